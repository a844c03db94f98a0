// One generated sequence: the unit the scheduler schedules. A request with
// n / best_of > 1 owns several; the first prefills the prompt and the others are
// forked from it (sharing its KV blocks) once the prompt is computed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kv/kv_cache_manager.h"
#include "sampling/logprobs.h"
#include "sampling/request_sampler.h"
#include "sampling/stop_string_matcher.h"
#include "tokenizer/incremental_detokenizer.h"

namespace kvserve {

enum class SeqState {
  kWaiting,     // queued: new, or preempted by recompute (no KV blocks)
  kSwapped,     // queued: preempted by swap (its KV lives in swap slots)
  kRunning,     // holds KV blocks
  kAwaitFork,   // n > 1: waits for the first sequence to finish the prompt
  kFinished,
};

struct Sequence {
  RequestId kv_id = 0;  // unique id in the KvCacheManager
  uint64_t group_id = 0;  // the EngineRequest id
  int index = 0;  // 0 .. best_of-1 within the group
  SeqState state = SeqState::kWaiting;

  std::vector<int32_t> tokens;  // prompt + generated, authoritative
  int prompt_len = 0;
  int num_computed = 0;         // tokens whose K/V are in the cache (or in swap)
  bool in_kv = false;           // registered with the KvCacheManager
  uint64_t cache_salt = 0;      // prefix-cache namespace (KvCacheManager extra key)

  std::vector<int32_t> swap_slots;  // kSwapped: one slot per block, logical order

  // Scheduling.
  int priority = 0;
  uint64_t arrival = 0;       // global submission counter (FCFS tiebreak)
  int64_t queued_step = 0;    // step it entered the waiting queue (aging)
  int num_preemptions = 0;

  // Generation.
  std::optional<RequestSampler> sampler;
  std::optional<IncrementalDetokenizer> detok;
  std::optional<StopStringMatcher> stop;
  std::string text;                        // emitted text so far
  std::vector<LogprobInfo> logprobs;       // per generated token, when asked
  std::vector<float> token_logprobs;       // sampled token's raw logprob
  std::string finish_reason;               // "stop", "length", "abort", or empty while running

  int num_generated() const { return static_cast<int>(tokens.size()) - prompt_len; }
};

}  // namespace kvserve
