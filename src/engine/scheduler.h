// Scheduler: queues, the per-step token budget, admission and preemption.
//
// Token accounting, not phases: a sequence has tokens.size() known tokens of which
// num_computed have K/V; each step the scheduler gives running sequences (best
// priority first) min(gap, budget, long-prefill cap) tokens, then admits waiting
// ones (prefix-cache hits skip matched tokens). Chunked prefill, decode, recompute
// after preemption and prefix hits all fall out of this one rule.
//
// Preemption: when a running sequence cannot get blocks, the worst running one
// (largest effective priority value, then latest arrival) is preempted — possibly
// the sequence itself. Recompute frees its blocks and requeues it; swap copies its
// computed blocks to host swap slots first. kAuto swaps victims with at least
// swap_min_tokens computed tokens when swap space has room (recomputing a long
// context costs a prefill; copying it costs two memcpys), recomputes the rest.
// A step that preempted admits nothing.
//
// Starvation: a waiting sequence's effective priority improves by one level per
// priority_aging_steps steps waited, so any request is eventually admitted ahead of
// newer arrivals of any priority.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/engine_config.h"
#include "engine/sequence.h"
#include "engine/swap_space.h"
#include "kv/kv_cache_manager.h"

namespace kvserve {

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t num_tokens = 0;    // tokens computed this step
  int32_t context_len = 0;   // tokens already computed before this step
};

struct SwapCopy {
  int32_t block = 0;  // KV block
  int32_t slot = 0;   // swap slot
};

// Everything the engine must do this step, in order: swap-outs (read blocks),
// swap-ins (write blocks), block copies, then the forward pass over `scheduled`.
struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;
  std::vector<SwapCopy> swap_out;
  std::vector<SwapCopy> swap_in;
  std::vector<BlockCopy> copies;
  int num_preempted_recompute = 0;
  int num_preempted_swap = 0;
  int32_t num_batched_tokens = 0;
};

class Scheduler {
 public:
  // REQUIRES: kv and swap outlive the scheduler; config validated.
  Scheduler(const EngineConfig& config, KvCacheManager* kv, SwapSpace* swap);

  // Queues a sequence (state kWaiting or kSwapped).
  void Enqueue(Sequence* seq);
  // Adds an already-running sequence (a forked n > 1 sample).
  void AddRunning(Sequence* seq);
  // Removes a sequence from the queues, frees its blocks and swap slots.
  void Remove(Sequence* seq);

  SchedulerOutput Schedule();

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t step() const { return step_; }
  const std::vector<Sequence*>& running() const { return running_; }

  // Aborts via KV_CHECK when the queues disagree with sequence states or the KV manager.
  void CheckInvariants() const;

 private:
  int64_t EffectivePriority(const Sequence* s) const;
  bool Better(const Sequence* a, const Sequence* b) const;  // a runs before b
  void Preempt(Sequence* victim, SchedulerOutput& out);
  // Tokens scheduled for the admitted sequence, or -1 (nothing changed) when it does not fit.
  int32_t AdmitSwapped(Sequence* seq, int32_t budget, SchedulerOutput& out);
  int32_t AdmitWaiting(Sequence* seq, int32_t budget, SchedulerOutput& out);
  int32_t ChunkFor(const Sequence* seq, int32_t budget) const;

  EngineConfig config_;
  KvCacheManager* kv_;
  SwapSpace* swap_;
  std::vector<Sequence*> waiting_;
  std::vector<Sequence*> running_;
  int64_t step_ = 0;
};

}  // namespace kvserve
