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
//
// A copy larger than `memory_available` bytes is refused with ResourceExhausted (the
// caller can keep the mapping): touching it all would end in the OOM killer, not in an
// error. The default reads MemAvailable from /proc/meminfo.
Status CopyWeightsToHugePages(Model& m, int64_t memory_available);
Status CopyWeightsToHugePages(Model& m);

// Re-lays out every Q8_0 weight as kQ8_0Rows, in place, for kernels that read that
// layout faster (each chunk of a row keeps its scales in front of its values, which
// form one run: model/quant.h). Tied tensors are converted once. REQUIRES:
// CopyWeightsToHugePages succeeded (the weights are this process's own memory, not
// the file mapping).
void SplitQ8_0Rows(Model& m);

// MemAvailable from /proc/meminfo in bytes, or -1 where it cannot be read. System-wide:
// a cgroup memory limit below it is not taken into account.
int64_t AvailableMemoryBytes();

// Parses "mapped" / "huge-pages".
StatusOr<WeightMemory> ParseWeightMemory(const std::string& s);

}  // namespace kvserve
