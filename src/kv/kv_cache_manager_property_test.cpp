// Property tests: thousands of random engine-like operation sequences (prefill with
// prefix hits, chunked prefill, decode, speculative append + rollback, fork, free,
// preemption) against a reference model, with every invariant checked after every
// operation.
//
// The oracle is a shadow KV cache: each slot holds a value that stands for the K/V
// of a token, a rolling hash of the salt and every token up to and including it (as
// real K/V depends on the whole prefix). The driver writes slots exactly as a
// forward pass would, and applies the manager's block copies as CopyBlocks would.
// After every operation every computed token of every request must read back its
// own value through its block table: a wrong prefix hit, a missed copy-on-write, a
// bad partial-block copy or a block reused while still referenced all show up here.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "kv/kv_cache_manager.h"

namespace kvserve {
namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdULL;
}

// What the manager should know about a request, tracked independently.
struct RefRequest {
  std::vector<int32_t> tokens;
  int32_t computed = 0;
  uint64_t salt = 0;
};

class Driver {
 public:
  Driver(uint64_t seed, int32_t num_blocks, int32_t block_size, bool caching)
      : rng_(seed), bs_(block_size), caching_(caching) {
    KvManagerConfig c;
    c.num_blocks = num_blocks;
    c.block_size = block_size;
    c.enable_prefix_caching = caching;
    c.enable_partial_block_reuse = caching && (seed % 4 != 0);
    c.hash_seed = seed * 7 + 1;
    auto m = KvCacheManager::Create(c);
    EXPECT_TRUE(m.ok());
    m_ = std::move(m).value();
    shadow_.assign(static_cast<size_t>(num_blocks) * block_size, 0);
    // A few shared "system prompts" so that requests share prefixes at odd lengths.
    for (int i = 0; i < 3; ++i) {
      std::vector<int32_t> p(Uniform(bs_, 6 * bs_ + 3));
      for (auto& t : p) t = Uniform(0, 5);
      bases_.push_back(p);
    }
  }

  void Run(int num_ops) {
    for (int op = 0; op < num_ops; ++op) {
      int kind = Uniform(0, 99);
      if (kind < 18) {
        OpAdd();
      } else if (kind < 40) {
        OpStep();
      } else if (kind < 55) {
        OpBatchStep();
      } else if (kind < 63) {
        OpSpeculate();
      } else if (kind < 71) {
        OpFork();
      } else if (kind < 83) {
        OpFree();
      } else if (kind < 91) {
        OpRollback();
      } else {
        OpAppend();
      }
      Verify();
      if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
    }
    // Drain: everything freed, all blocks back in the free queue.
    std::vector<RequestId> ids;
    for (auto& [id, r] : ref_) ids.push_back(id);
    for (RequestId id : ids) {
      m_->Free(id);
      ref_.erase(id);
    }
    Verify();
    EXPECT_EQ(m_->NumFreeBlocks(), m_->pool().num_blocks());
  }

  int64_t successes() const { return successes_; }
  int64_t failures() const { return failures_; }
  const KvCacheManager& manager() const { return *m_; }

 private:
  int32_t Uniform(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng_); }
  RequestId PickRequest() {
    auto it = ref_.begin();
    std::advance(it, Uniform(0, static_cast<int32_t>(ref_.size()) - 1));
    return it->first;
  }

  std::vector<int32_t> RandomTokens(int32_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = Uniform(0, 5);  // a tiny alphabet makes accidental sharing likely
    return t;
  }

  // Value of the K/V of every token of `r`, as a forward pass would write it.
  static std::vector<uint64_t> Values(const RefRequest& r, size_t n) {
    std::vector<uint64_t> v(n);
    uint64_t h = Mix(0x1234, r.salt);
    for (size_t p = 0; p < n; ++p) v[p] = h = Mix(h, static_cast<uint64_t>(r.tokens[p]) + 1);
    return v;
  }

  // Snapshot of everything a failed allocation must leave alone.
  struct Snapshot {
    std::vector<int32_t> free_order;
    std::map<RequestId, std::vector<int32_t>> tables;
    std::vector<int32_t> refs;
    int32_t num_cached;
    bool operator==(const Snapshot&) const = default;
  };
  Snapshot Take() const {
    Snapshot s;
    s.free_order = m_->pool().FreeQueueOrder();
    for (auto& [id, r] : ref_) {
      auto t = m_->BlockTable(id);
      s.tables[id] = {t.begin(), t.end()};
    }
    for (int32_t b = 0; b < m_->pool().num_blocks(); ++b) s.refs.push_back(m_->pool().ref_count(b));
    s.num_cached = m_->pool().num_cached();
    return s;
  }

  // Longest prefix of `r` any request ever computed into full blocks (same salt):
  // no prefix hit can exceed it.
  int32_t HitUpperBound(const RefRequest& r) const {
    int32_t best = 0;
    for (const auto& [salt, seq] : computed_history_) {
      if (salt != r.salt) continue;
      int32_t n = static_cast<int32_t>(std::min(seq.size(), r.tokens.size()));
      int32_t k = 0;
      while (k < n && seq[k] == r.tokens[k]) ++k;
      best = std::max(best, k);
    }
    return std::min<int32_t>(best, std::max<int32_t>(0, static_cast<int32_t>(r.tokens.size()) - 1));
  }

  // Full blocks any live request (same salt) has computed that match `id`'s
  // tokens: all of them must be found, since computed full blocks stay cached
  // while referenced.
  int32_t FullHitLowerBound(RequestId id) const {
    if (!caching_) return 0;
    const RefRequest& r = ref_.at(id);
    int32_t best = 0;
    for (const auto& [other, o] : ref_) {
      if (other == id || o.salt != r.salt) continue;
      int32_t n = std::min<int32_t>((o.computed / bs_) * bs_, static_cast<int32_t>(r.tokens.size()));
      int32_t k = 0;
      while (k < n && o.tokens[k] == r.tokens[k]) ++k;
      best = std::max(best, k);
    }
    best = std::min<int32_t>(best, static_cast<int32_t>(r.tokens.size()) - 1);
    return std::max(0, best / bs_ * bs_);
  }

  // Allocates room for n tokens (after the prefix hit for a request without blocks).
  // Returns the number of tokens scheduled, or -1 when out of blocks.
  int32_t Allocate(RequestId id, int32_t n, int32_t lookahead) {
    RefRequest& r = ref_.at(id);
    const bool fresh = m_->BlockTable(id).empty() && r.computed == 0;
    PrefixHit hit;
    if (fresh) {
      hit = m_->GetComputedBlocks(id);
      EXPECT_LE(hit.num_tokens, HitUpperBound(r)) << "prefix hit longer than anything ever computed";
      EXPECT_GE(static_cast<int32_t>(hit.blocks.size()) * bs_, FullHitLowerBound(id))
          << "a live request holds a longer computed prefix in full blocks";
      EXPECT_EQ(hit.num_tokens, static_cast<int32_t>(hit.blocks.size()) * bs_ + hit.partial_tokens);
      EXPECT_LT(hit.partial_tokens, bs_ + (hit.partial_src < 0 ? 1 : 0));
      n = std::min<int32_t>(n, static_cast<int32_t>(r.tokens.size()) - hit.num_tokens);
    }
    const int32_t free_before = m_->NumFreeBlocks();
    const int32_t need = m_->NumBlocksNeeded(id, n, lookahead, fresh ? &hit : nullptr);
    Snapshot before = Take();
    bool ok = m_->AllocateSlots(id, n, lookahead, fresh ? &hit : nullptr);
    if (!ok) {
      ++failures_;
      EXPECT_GT(need, free_before);
      EXPECT_TRUE(Take() == before) << "failed allocation changed state";
      return -1;
    }
    ++successes_;
    EXPECT_LE(need, free_before);
    EXPECT_EQ(m_->NumFreeBlocks(), free_before - need);
    if (fresh) r.computed = hit.num_tokens;
    EXPECT_EQ(m_->NumComputedTokens(id), r.computed);
    EXPECT_GE(static_cast<int64_t>(m_->BlockTable(id).size()) * bs_, static_cast<int64_t>(r.computed) + n + lookahead);
    return n;
  }

  // The backend's CopyBlocks, in order.
  void ApplyCopies() {
    for (auto [src, dst] : m_->TakePendingCopies()) {
      EXPECT_NE(src, dst);
      std::copy_n(shadow_.begin() + static_cast<size_t>(src) * bs_, bs_, shadow_.begin() + static_cast<size_t>(dst) * bs_);
    }
  }

  // The forward pass writing n new tokens, then CommitComputed.
  void WriteAndCommit(RequestId id, int32_t n) {
    RefRequest& r = ref_.at(id);
    auto values = Values(r, r.computed + n);
    auto table = m_->BlockTable(id);
    for (int32_t p = r.computed; p < r.computed + n; ++p) {
      shadow_[static_cast<size_t>(table[p / bs_]) * bs_ + p % bs_] = values[p];
    }
    m_->CommitComputed(id, n);
    r.computed += n;
    if (caching_ && r.computed >= bs_) {
      computed_history_.insert({r.salt, std::vector<int32_t>(r.tokens.begin(), r.tokens.begin() + (r.computed / bs_) * bs_)});
    }
  }

  bool Schedule(RequestId id, int32_t n, int32_t lookahead) {
    n = Allocate(id, n, lookahead);
    if (n < 0) return false;
    ApplyCopies();
    WriteAndCommit(id, n);
    return true;
  }

  // Next chunk for a request: its uncomputed tokens, or a newly sampled token.
  int32_t NextChunk(RequestId id) {
    RefRequest& r = ref_.at(id);
    if (r.computed == static_cast<int32_t>(r.tokens.size())) {
      auto t = RandomTokens(1);  // "sample" a token
      r.tokens.push_back(t[0]);
      m_->AppendTokens(id, t);
    }
    return Uniform(1, static_cast<int32_t>(r.tokens.size()) - r.computed);
  }

  // An engine step over several requests: all allocations first (copies queue up
  // and pins accumulate), sometimes a preemption of an already scheduled request,
  // then the copies, then the forward pass.
  void OpBatchStep() {
    if (ref_.empty()) return;
    std::vector<std::pair<RequestId, int32_t>> scheduled;
    std::set<RequestId> picked;
    int k = Uniform(1, 4);
    for (int i = 0; i < k; ++i) {
      RequestId id = PickRequest();
      if (!picked.insert(id).second) continue;
      int32_t n = Allocate(id, NextChunk(id), Uniform(0, 3) ? 0 : Uniform(1, 3));
      if (n >= 0) scheduled.push_back({id, n});
    }
    if (!scheduled.empty() && Uniform(0, 3) == 0) {
      size_t victim = Uniform(0, static_cast<int32_t>(scheduled.size()) - 1);
      m_->Free(scheduled[victim].first);
      ref_.erase(scheduled[victim].first);
      scheduled.erase(scheduled.begin() + victim);
      // The freed blocks may go straight to another request in the same step.
      if (!ref_.empty()) {
        RequestId id = PickRequest();
        if (!picked.count(id)) {
          picked.insert(id);
          int32_t n = Allocate(id, NextChunk(id), 0);
          if (n >= 0) scheduled.push_back({id, n});
        }
      }
    }
    m_->CheckInvariants();
    ApplyCopies();
    for (auto [id, n] : scheduled) WriteAndCommit(id, n);
  }

  void OpAdd() {
    if (ref_.size() >= 12) return;
    RequestId id = next_id_++;
    RefRequest r;
    r.salt = Uniform(0, 3) == 0 ? 1 : 0;
    if (Uniform(0, 2) > 0) {
      const auto& base = bases_[Uniform(0, static_cast<int32_t>(bases_.size()) - 1)];
      int32_t keep = Uniform(0, static_cast<int32_t>(base.size()));
      r.tokens.assign(base.begin(), base.begin() + keep);
    }
    auto tail = RandomTokens(Uniform(1, 3 * bs_));
    r.tokens.insert(r.tokens.end(), tail.begin(), tail.end());
    m_->AddRequest(id, r.tokens, r.salt);
    ref_[id] = r;
    Schedule(id, Uniform(1, static_cast<int32_t>(r.tokens.size())), Uniform(0, 1) ? 0 : Uniform(0, 3));
  }

  void OpStep() {
    if (ref_.empty()) return;
    RequestId id = PickRequest();
    int32_t n = NextChunk(id);
    Schedule(id, n, Uniform(0, 2) ? 0 : Uniform(1, 4));
  }

  void OpSpeculate() {
    if (ref_.empty()) return;
    RequestId id = PickRequest();
    RefRequest& r = ref_.at(id);
    if (r.computed != static_cast<int32_t>(r.tokens.size())) return;
    int32_t k = Uniform(1, 4);
    auto drafts = RandomTokens(k);
    r.tokens.insert(r.tokens.end(), drafts.begin(), drafts.end());
    m_->AppendTokens(id, drafts);
    if (!Schedule(id, k, 0)) {
      m_->Rollback(id, k);
      r.tokens.resize(r.tokens.size() - k);
      return;
    }
    int32_t reject = Uniform(0, k);
    m_->Rollback(id, reject);
    r.tokens.resize(r.tokens.size() - reject);
    r.computed = std::min<int32_t>(r.computed, static_cast<int32_t>(r.tokens.size()));
  }

  void OpFork() {
    if (ref_.empty() || ref_.size() >= 12) return;
    RequestId parent = PickRequest();
    RequestId child = next_id_++;
    m_->Fork(parent, child);
    ref_[child] = ref_.at(parent);
  }

  void OpFree() {
    if (ref_.empty()) return;
    RequestId id = PickRequest();
    m_->Free(id);
    ref_.erase(id);
  }

  void OpRollback() {
    if (ref_.empty()) return;
    RequestId id = PickRequest();
    RefRequest& r = ref_.at(id);
    int32_t k = Uniform(0, std::min<int32_t>(static_cast<int32_t>(r.tokens.size()), 2 * bs_ + 1));
    m_->Rollback(id, k);
    r.tokens.resize(r.tokens.size() - k);
    r.computed = std::min<int32_t>(r.computed, static_cast<int32_t>(r.tokens.size()));
  }

  void OpAppend() {
    if (ref_.empty()) return;
    RequestId id = PickRequest();
    auto t = RandomTokens(Uniform(1, 2 * bs_));
    ref_.at(id).tokens.insert(ref_.at(id).tokens.end(), t.begin(), t.end());
    m_->AppendTokens(id, t);
  }

  void Verify() {
    m_->CheckInvariants();
    std::set<int32_t> live;
    for (auto& [id, r] : ref_) {
      ASSERT_TRUE(m_->HasRequest(id));
      auto toks = m_->Tokens(id);
      ASSERT_TRUE(std::equal(toks.begin(), toks.end(), r.tokens.begin(), r.tokens.end())) << "request " << id;
      ASSERT_EQ(m_->NumComputedTokens(id), r.computed) << "request " << id;
      auto table = m_->BlockTable(id);
      auto values = Values(r, r.computed);
      for (int32_t p = 0; p < r.computed; ++p) {
        ASSERT_EQ(shadow_[static_cast<size_t>(table[p / bs_]) * bs_ + p % bs_], values[p])
            << "request " << id << " token " << p << " reads another token's K/V through block " << table[p / bs_];
      }
      live.insert(table.begin(), table.end());
    }
    KvStats s = m_->Stats();
    ASSERT_EQ(s.used_blocks, static_cast<int32_t>(live.size()));
    ASSERT_EQ(s.used_blocks + s.free_blocks, s.num_blocks);
    ASSERT_GE(s.internal_fragmentation, 0.0);
    ASSERT_LE(s.internal_fragmentation, 1.0);
  }

  std::mt19937_64 rng_;
  int32_t bs_;
  bool caching_;
  std::unique_ptr<KvCacheManager> m_;
  std::vector<uint64_t> shadow_;
  std::vector<std::vector<int32_t>> bases_;
  std::map<RequestId, RefRequest> ref_;
  std::set<std::pair<uint64_t, std::vector<int32_t>>> computed_history_;
  RequestId next_id_ = 1;
  int64_t successes_ = 0;
  int64_t failures_ = 0;
};

TEST(KvCacheManagerProperty, RandomOperationSequencesKeepInvariantsAndKvContents) {
  // KVSERVE_KV_PROPERTY_SEQUENCES / _OPS / _SEED widen a soak run.
  const char* env_n = std::getenv("KVSERVE_KV_PROPERTY_SEQUENCES");
  const char* env_seed = std::getenv("KVSERVE_KV_PROPERTY_SEED");
  const int kSequences = env_n ? std::atoi(env_n) : 1500;
  const uint64_t seed_base = env_seed ? std::strtoull(env_seed, nullptr, 10) : 0;
  const char* env_ops = std::getenv("KVSERVE_KV_PROPERTY_OPS");
  const int kOps = env_ops ? std::atoi(env_ops) : 150;
  int64_t successes = 0, failures = 0, hits = 0, evictions = 0, cows = 0, partials = 0;
  for (int seq = 0; seq < kSequences; ++seq) {
    const int32_t block_sizes[] = {1, 2, 3, 4, 16};
    int32_t bs = block_sizes[seq % 5];
    int32_t num_blocks = (seq % 3 == 0) ? 8 + seq % 11 : 24 + seq % 40;
    if (bs == 16) num_blocks = std::max(num_blocks / 4, 4);
    if (bs == 1) num_blocks *= 4;
    bool caching = (seq % 10) != 9;
    Driver d((seed_base + static_cast<uint64_t>(seq)) * 2654435761ULL + 17, num_blocks, bs, caching);
    d.Run(kOps);
    if (HasFailure()) {
      ADD_FAILURE() << "sequence " << seq << " (block_size " << bs << ", " << num_blocks << " blocks)";
      return;
    }
    successes += d.successes();
    failures += d.failures();
    KvStats s = d.manager().Stats();
    hits += s.prefix_hit_tokens;
    evictions += s.evictions;
    cows += s.cow_copies;
    partials += s.partial_reuse_copies;
  }
  // The generator must actually reach every interesting path.
  EXPECT_GT(successes, 10000);
  EXPECT_GT(failures, 100);
  EXPECT_GT(hits, 1000);
  EXPECT_GT(evictions, 100);
  EXPECT_GT(cows, 100);
  EXPECT_GT(partials, 100);
  std::printf("[property] %d sequences x %d ops: %lld allocations, %lld out-of-blocks, %lld hit tokens, "
              "%lld evictions, %lld CoW copies, %lld partial-reuse copies\n",
              kSequences, kOps, static_cast<long long>(successes), static_cast<long long>(failures),
              static_cast<long long>(hits), static_cast<long long>(evictions), static_cast<long long>(cows),
              static_cast<long long>(partials));
}

}  // namespace
}  // namespace kvserve
