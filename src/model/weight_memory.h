// Where a loaded model's weights live.
#pragma once

#include "model/model.h"
#include "util/status.h"

namespace kvserve {

enum class WeightMemory {
  kMapped,     // used in place from the file mapping (shared page cache, 4 KiB pages)
  kHugePages,  // copied once into anonymous memory backed by 2 MiB pages
};

// Copies every weight tensor into one HugePageRegion (64-byte aligned, tied tensors
// once) and points the model's tensors at the copies. The file mappings stay (the
// tokenizer and metadata may point into them); their pages are no longer read and the
// kernel can reclaim them. On failure the model is unchanged.
Status CopyWeightsToHugePages(Model& m);

// Parses "mapped" / "huge-pages".
StatusOr<WeightMemory> ParseWeightMemory(const std::string& s);

}  // namespace kvserve
