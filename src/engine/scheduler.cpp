#include "engine/scheduler.h"

#include <algorithm>

namespace kvserve {

Scheduler::Scheduler(const EngineConfig& config, KvCacheManager* kv, SwapSpace* swap) : config_(config), kv_(kv), swap_(swap) {}

void Scheduler::Enqueue(Sequence* seq) {
  KV_CHECK(seq->state == SeqState::kWaiting || seq->state == SeqState::kSwapped);
  seq->queued_step = step_;
  waiting_.push_back(seq);
}

void Scheduler::AddRunning(Sequence* seq) {
  KV_CHECK(seq->in_kv);
  seq->state = SeqState::kRunning;
  running_.push_back(seq);
}

void Scheduler::Remove(Sequence* seq) {
  std::erase(waiting_, seq);
  std::erase(running_, seq);
  if (seq->in_kv) {
    kv_->Free(seq->kv_id);
    seq->in_kv = false;
  }
  if (!seq->swap_slots.empty()) {
    swap_->Free(seq->swap_slots);
    seq->swap_slots.clear();
  }
}

int64_t Scheduler::EffectivePriority(const Sequence* s) const {
  if (config_.priority_aging_steps <= 0 || s->state == SeqState::kRunning) return s->priority;
  return s->priority - (step_ - s->queued_step) / config_.priority_aging_steps;
}

bool Scheduler::Better(const Sequence* a, const Sequence* b) const {
  int64_t pa = EffectivePriority(a), pb = EffectivePriority(b);
  if (pa != pb) return pa < pb;
  if (a->arrival != b->arrival) return a->arrival < b->arrival;
  return a->index < b->index;
}

int32_t Scheduler::ChunkFor(const Sequence* seq, int32_t budget) const {
  int32_t gap = static_cast<int32_t>(seq->tokens.size()) - seq->num_computed;
  int32_t n = std::min(gap, budget);
  if (gap > 1 && config_.long_prefill_threshold > 0) n = std::min(n, config_.long_prefill_threshold);
  return n;
}

void Scheduler::Preempt(Sequence* victim, SchedulerOutput& out) {
  KV_CHECK(victim->state == SeqState::kRunning && victim->in_kv);
  std::erase(running_, victim);
  victim->num_preemptions++;
  const int32_t bs = kv_->block_size();
  const int32_t computed = kv_->NumComputedTokens(victim->kv_id);
  const int32_t blocks = (computed + bs - 1) / bs;

  bool swap = false;
  if (config_.preemption_mode == PreemptionMode::kSwap) swap = true;
  if (config_.preemption_mode == PreemptionMode::kAuto) swap = computed >= config_.swap_min_tokens;
  std::optional<std::vector<int32_t>> slots;
  if (swap && blocks > 0) slots = swap_->Allocate(blocks);

  if (slots) {
    std::span<const int32_t> table = kv_->BlockTable(victim->kv_id);
    for (int32_t i = 0; i < blocks; ++i) out.swap_out.push_back({table[i], (*slots)[i]});
    victim->swap_slots = std::move(*slots);
    victim->num_computed = computed;
    victim->state = SeqState::kSwapped;
    out.num_preempted_swap++;
  } else {
    // Recompute (also the fallback when swap space is full).
    victim->num_computed = 0;
    victim->state = SeqState::kWaiting;
    out.num_preempted_recompute++;
  }
  kv_->Free(victim->kv_id);
  victim->in_kv = false;
  // Preempted sequences go back ahead of newer arrivals: they keep their arrival stamp.
  Enqueue(victim);
}

int32_t Scheduler::AdmitSwapped(Sequence* seq, int32_t budget, SchedulerOutput& out) {
  const int32_t restored = seq->num_computed;
  int32_t n = ChunkFor(seq, budget);
  kv_->AddRequest(seq->kv_id, seq->tokens, seq->cache_salt);
  if (!kv_->AllocateSlots(seq->kv_id, restored + n)) {
    kv_->Free(seq->kv_id);
    return -1;
  }
  // The swap-ins are written before this step's forward pass, so the restored
  // tokens count as computed from here on. Committing may swap a restored full block
  // for an identical cached one, so the copy targets are read after it.
  kv_->CommitComputed(seq->kv_id, restored);
  std::span<const int32_t> table = kv_->BlockTable(seq->kv_id);
  for (size_t i = 0; i < seq->swap_slots.size(); ++i) out.swap_in.push_back({table[i], seq->swap_slots[i]});
  swap_->Free(seq->swap_slots);
  seq->swap_slots.clear();
  seq->in_kv = true;
  seq->state = SeqState::kRunning;
  running_.push_back(seq);
  if (n > 0) out.scheduled.push_back({seq, n, restored});
  out.num_batched_tokens += n;
  return n;
}

int32_t Scheduler::AdmitWaiting(Sequence* seq, int32_t budget, SchedulerOutput& out) {
  kv_->AddRequest(seq->kv_id, seq->tokens, seq->cache_salt);
  PrefixHit hit;
  if (config_.enable_prefix_caching) hit = kv_->GetComputedBlocks(seq->kv_id);
  int32_t gap = static_cast<int32_t>(seq->tokens.size()) - hit.num_tokens;
  int32_t n = std::min(gap, budget);
  if (gap > 1 && config_.long_prefill_threshold > 0) n = std::min(n, config_.long_prefill_threshold);
  bool ok = config_.enable_prefix_caching ? kv_->AllocateSlots(seq->kv_id, n, 0, &hit) : kv_->AllocateSlots(seq->kv_id, n);
  if (!ok) {
    kv_->Free(seq->kv_id);
    return -1;
  }
  seq->in_kv = true;
  seq->num_computed = kv_->NumComputedTokens(seq->kv_id);
  seq->state = SeqState::kRunning;
  running_.push_back(seq);
  out.scheduled.push_back({seq, n, seq->num_computed});
  out.num_batched_tokens += n;
  return n;
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  int32_t budget = config_.max_num_batched_tokens;

  // 1. Running sequences, best first; victims come from the worst end.
  std::sort(running_.begin(), running_.end(), [this](Sequence* a, Sequence* b) { return Better(a, b); });
  std::vector<Sequence*> order = running_;
  for (Sequence* seq : order) {
    if (seq->state != SeqState::kRunning) continue;  // preempted earlier in this loop
    if (budget <= 0) break;
    int32_t n = ChunkFor(seq, budget);
    if (n <= 0) continue;
    bool scheduled = false;
    while (true) {
      if (kv_->AllocateSlots(seq->kv_id, n)) {
        scheduled = true;
        break;
      }
      Sequence* victim = running_.back();
      Preempt(victim, out);
      if (victim == seq) break;
    }
    if (!scheduled) continue;
    out.scheduled.push_back({seq, n, seq->num_computed});
    out.num_batched_tokens += n;
    budget -= n;
  }

  // 2. Admissions, unless this step preempted.
  const bool preempted = out.num_preempted_recompute + out.num_preempted_swap > 0;
  if (!preempted) {
    std::stable_sort(waiting_.begin(), waiting_.end(), [this](Sequence* a, Sequence* b) { return Better(a, b); });
    size_t admitted = 0;
    for (Sequence* seq : waiting_) {
      if (budget <= 0 || static_cast<int>(running_.size()) >= config_.max_num_seqs) break;
      int32_t n = seq->state == SeqState::kSwapped ? AdmitSwapped(seq, budget, out) : AdmitWaiting(seq, budget, out);
      if (n < 0) break;  // head-of-line: later arrivals do not overtake a request that does not fit
      budget -= n;
      ++admitted;
    }
    waiting_.erase(waiting_.begin(), waiting_.begin() + admitted);
  }

  out.copies = kv_->TakePendingCopies();
  ++step_;
  return out;
}

void Scheduler::CheckInvariants() const {
  for (const Sequence* s : running_) {
    KV_CHECK(s->state == SeqState::kRunning && s->in_kv && kv_->HasRequest(s->kv_id));
    KV_CHECK(kv_->NumComputedTokens(s->kv_id) == s->num_computed);
    KV_CHECK(kv_->NumTokens(s->kv_id) == static_cast<int32_t>(s->tokens.size()));
  }
  for (const Sequence* s : waiting_) {
    KV_CHECK(s->state == SeqState::kWaiting || s->state == SeqState::kSwapped);
    KV_CHECK(!s->in_kv && !kv_->HasRequest(s->kv_id));
    if (s->state == SeqState::kSwapped) KV_CHECK(!s->swap_slots.empty() && s->num_computed > 0);
    if (s->state == SeqState::kWaiting) KV_CHECK(s->swap_slots.empty() && s->num_computed == 0);
  }
}

}  // namespace kvserve
