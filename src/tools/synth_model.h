// Synthetic models: random weights in the real shapes of well-known models, with
// the family's real tokenizer, written as a llama.cpp-style GGUF. For benchmarks
// and tests at real sizes without downloading weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/model_config.h"
#include "util/status.h"

namespace kvserve {

struct SynthOptions {
  std::string shape;           // one of SynthShapeNames()
  DType dtype = DType::kQ8_0;  // every weight matrix; norms, biases and rope factors stay F32
  uint64_t seed = 0;
  int num_layers = 0;          // 0: the shape's own count; otherwise an override (small test files)
  float weight_std = 0.02f;    // N(0, std) matrices keep activations finite; norms are 1, biases 0
};

std::vector<std::string> SynthShapeNames();

// The config a synthetic model of these options has (shape, layer override, eps, RoPE scaling).
StatusOr<ModelConfig> SynthModelConfig(const SynthOptions& opts);

// Path of the family's tokenizer under the shared fixture folder
// (tokenizer.json, or a SentencePiece tokenizer.model).
StatusOr<std::string> SynthTokenizerPath(const std::string& shape);

// "f16", "bf16", "q8_0", "q4_0" (the dtypes synth writes).
StatusOr<DType> ParseSynthDType(const std::string& name);

struct SynthResult {
  ModelConfig config;
  uint64_t tensor_bytes = 0;  // weights in the file
  int num_tensors = 0;
};

// Writes the model to `out_path` (streamed; the file appears only when complete).
// Deterministic: the same options give the same bytes.
StatusOr<SynthResult> WriteSynthModel(const SynthOptions& opts, const std::string& out_path);

}  // namespace kvserve
