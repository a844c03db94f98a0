// Synthetic workloads that drive the real KvCacheManager the way the engine does
// (prefix lookup, prefill, forks for parallel sampling, one decode token per step),
// with no model run. Used by `kvserve kv-sim`, the memory-waste tests and the
// benchmark.
//
// Workloads (token ids are random; lengths are drawn from log-normal distributions
// with the stated median m and shape s, clamped):
//   lengths        independent chat requests shaped after ShareGPT as reported in
//                  the vLLM paper (mean input ~160, mean output ~340 tokens):
//                  prompt m=100 s=1.1 in [4, 4096], output m=220 s=0.8 in [1, 2048].
//   shared-prefix  the seeds' example: every request starts with the same
//                  2,048-token system prompt, then a 5-token user header (shared),
//                  a question m=64 s=0.8 in [4, 1024], output m=128 s=0.8 in [1, 1024].
//                  Requests arrive one after another, so each sees the earlier
//                  ones' blocks cached.
//   multi-turn     conversations of `turns` turns: a shared 128-token system prompt,
//                  then per turn a 5-token user header + message m=48 s=0.8 in
//                  [1, 512] and a reply m=160 s=0.8 in [1, 1024]; the next turn's
//                  prompt is the whole history. Each turn runs all conversations
//                  concurrently, then frees them; the next turn hits the cache.
// Every request's sequences decode until all are done and are measured while all
// are still resident (the memory peak), then freed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kv/kv_cache_manager.h"
#include "kv/kv_stats.h"
#include "util/status.h"

namespace kvserve {

enum class KvWorkload { kLengths, kSharedPrefix, kMultiTurn };

StatusOr<KvWorkload> ParseKvWorkload(std::string_view name);
const char* KvWorkloadName(KvWorkload w);

struct KvSimConfig {
  KvWorkload workload = KvWorkload::kLengths;
  int32_t num_requests = 0;   // requests (conversations for multi-turn); 0 = 1000 / 10 / 16
  uint64_t seed = 1;
  int32_t block_size = 16;
  size_t bytes_per_block = 0;  // KvBlockBytes for the model and dtype; 0 = report tokens only
  int32_t parallel_samples = 1;  // sequences per request (forked after prefill, like n > 1 sampling)
  int32_t turns = 4;             // multi-turn only
  bool enable_prefix_caching = true;
  bool enable_partial_block_reuse = true;
};

struct KvSimResult {
  KvSimConfig config;
  int32_t num_blocks = 0;         // pool size (sized so the workload never runs out)
  int32_t num_sequences = 0;      // resident at the snapshot
  int64_t resident_tokens = 0;    // tokens of those sequences
  int32_t max_sequence_len = 0;
  KvStats at_peak;                // snapshot with everything resident
  KvStats final_stats;            // after every request is freed (running counters)
  int64_t bytes_stored = 0;                 // peak used blocks x bytes per block
  int64_t bytes_contiguous_equivalent = 0;  // each sequence given a contiguous cache of max_sequence_len
  int64_t bytes_contiguous_exact = 0;       // each sequence given exactly its own length, nothing shared

  nlohmann::json ToJson() const;
};

// `at_peak`, if set, sees the manager at the snapshot (for prefix-tree dumps).
// Errors: bad config values (named).
StatusOr<KvSimResult> RunKvSim(const KvSimConfig& config,
                               const std::function<void(const KvCacheManager&)>& at_peak = {});

}  // namespace kvserve
