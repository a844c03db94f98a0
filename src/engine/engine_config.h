// Engine options shared by `generate`, `serve` and `bench`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "util/status.h"

namespace kvserve {

enum class PreemptionMode {
  kRecompute,  // free the victim's blocks; it prefills prompt + output again later
  kSwap,       // copy its blocks to host swap space; restore them before it runs again
  kAuto,       // per victim: swap when recomputing would cost more (see scheduler.h)
};

struct EngineConfig {
  int block_size = 16;
  // KV pool size: num_kv_blocks if > 0, else kv_cache_memory bytes / block bytes.
  int num_kv_blocks = 0;
  size_t kv_cache_memory = size_t{512} << 20;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 2048;
  // Most prompt tokens one request may prefill in a step (0 = max_num_batched_tokens),
  // so a long prompt cannot stall the decodes sharing the step.
  int long_prefill_threshold = 0;
  PreemptionMode preemption_mode = PreemptionMode::kAuto;
  size_t swap_space = size_t{256} << 20;
  bool enable_prefix_caching = true;
  int threads = 2;
  // Waiting requests beyond this are refused (the server answers 429/503).
  int max_waiting_requests = 1024;
  // Starvation bound: a waiting request's priority improves by one level every
  // `priority_aging_steps` steps it waits (0 = no aging).
  int priority_aging_steps = 256;
  // auto mode swaps a victim with at least this many computed tokens.
  int swap_min_tokens = 128;
  bool reference_precision = false;  // float32 reference kernels instead of the fast path
  // Element type of the paged KV cache. f16 halves its memory (twice the blocks in the
  // same --kv-cache-memory) and the bytes attention reads each step; llama.cpp keeps
  // f16 by default too. The CPU backend has f32 and f16.
  KvCacheDType kv_cache_dtype = KvCacheDType::kF16;

  // InvalidArgument naming the option and the allowed range.
  Status Validate() const;
};

StatusOr<PreemptionMode> ParsePreemptionMode(const std::string& s);
const char* PreemptionModeName(PreemptionMode m);

}  // namespace kvserve
