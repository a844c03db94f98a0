#include "cli/model_and_tokenizer.h"

#include <cstdio>

#include "backend/cpu/cpu_backend.h"

namespace kvserve::cli {

StatusOr<ModelAndTokenizer> LoadModelAndTokenizer(const std::string& path, WeightMemory memory) {
  ModelAndTokenizer m;
  KV_ASSIGN_OR_RETURN(m.model, LoadModel(path));
  if (memory == WeightMemory::kHugePages) {
    Status copied = CopyWeightsToHugePages(*m.model);
    if (copied.code() == Status::Code::kResourceExhausted) {
      // Serving from the mapping is slower but works in less memory than a copy.
      std::fprintf(stderr, "kvserve: warning: %s; reading the weights from the file mapping instead (--weights-memory mapped)\n",
                   copied.message().c_str());
    } else {
      KV_RETURN_IF_ERROR(copied);
      PrepareWeightsForCpu(*m.model, BestDotKernels());
    }
  }
  auto tok = Tokenizer::Create(m.model->vocab);
  if (!tok.ok()) return Status(Status::InvalidArgument(path + ": tokenizer: " + tok.status().ToString()));
  m.tokenizer = std::move(tok).value();
  return m;
}

}  // namespace kvserve::cli
