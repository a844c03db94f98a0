// The model + tokenizer pair every serving command starts from.
#pragma once

#include <memory>
#include <string>

#include "model/model.h"
#include "model/weight_memory.h"
#include "tokenizer/tokenizer.h"

namespace kvserve::cli {

struct ModelAndTokenizer {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // built from model->vocab
};

// Errors name the path (LoadModel's message, or "PATH: tokenizer: ...").
StatusOr<ModelAndTokenizer> LoadModelAndTokenizer(const std::string& path, WeightMemory memory);

}  // namespace kvserve::cli
