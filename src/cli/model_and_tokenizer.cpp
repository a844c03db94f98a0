#include "cli/model_and_tokenizer.h"

namespace kvserve::cli {

StatusOr<ModelAndTokenizer> LoadModelAndTokenizer(const std::string& path, WeightMemory memory) {
  ModelAndTokenizer m;
  KV_ASSIGN_OR_RETURN(m.model, LoadModel(path));
  if (memory == WeightMemory::kHugePages) KV_RETURN_IF_ERROR(CopyWeightsToHugePages(*m.model));
  auto tok = Tokenizer::Create(m.model->vocab);
  if (!tok.ok()) return Status(Status::InvalidArgument(path + ": tokenizer: " + tok.status().ToString()));
  m.tokenizer = std::move(tok).value();
  return m;
}

}  // namespace kvserve::cli
