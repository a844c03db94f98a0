// Differential test: the KvCacheManager against a naive reference written with
// plain STL containers (std::list free queue, std::map keyed by the full token
// prefix instead of chained hashes, linear scans instead of intrusive sibling
// lists). Both follow the same policy, so after every random operation the block
// tables, free-queue order, ref counts, cache contents, pending copies and
// counters must be identical: the optimized data structures are checked against
// an obviously correct model, block id by block id.
#include <algorithm>
#include <list>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kv/kv_cache_manager.h"

namespace kvserve {
namespace {

class NaiveKvCache {
 public:
  // Key of a cached block: salt + every token from the start of the sequence to
  // the end of the block (what the chained hash stands for).
  using Key = std::pair<uint64_t, std::vector<int32_t>>;

  NaiveKvCache(int32_t num_blocks, int32_t bs, bool partial) : bs_(bs), partial_(partial), blocks_(num_blocks) {
    for (int32_t b = 0; b < num_blocks; ++b) free_.push_back(b);
  }

  struct Hit {
    std::vector<int32_t> blocks;
    int32_t partial_src = -1, partial_tokens = 0, num_tokens = 0;
  };

  void Add(RequestId id, std::vector<int32_t> tokens, uint64_t salt) { reqs_[id] = {std::move(tokens), {}, 0, salt}; }
  void Append(RequestId id, const std::vector<int32_t>& t) {
    auto& r = reqs_.at(id);
    r.tokens.insert(r.tokens.end(), t.begin(), t.end());
  }

  Hit Lookup(RequestId id) const {
    const auto& r = reqs_.at(id);
    Hit h;
    const int32_t n = static_cast<int32_t>(r.tokens.size());
    if (n <= 1) return h;
    const int32_t max_hit = n - 1;
    int32_t i = 0;
    while ((i + 1) * bs_ <= max_hit) {
      auto it = cache_.find(KeyOf(r, (i + 1) * bs_));
      if (it == cache_.end()) break;
      h.blocks.push_back(it->second);
      ++i;
    }
    int32_t rest = std::min(bs_, max_hit - i * bs_);
    if (partial_ && rest > 0) {
      // Candidates: cached children of the matched prefix, newest first, at most 32.
      std::vector<std::pair<int64_t, int32_t>> cands;
      for (auto& [key, b] : cache_) {
        if (key.first != r.salt || static_cast<int32_t>(key.second.size()) != (i + 1) * bs_) continue;
        if (!std::equal(key.second.begin(), key.second.begin() + i * bs_, r.tokens.begin())) continue;
        cands.push_back({-blocks_[b].cache_time, b});
      }
      std::sort(cands.begin(), cands.end());
      if (cands.size() > static_cast<size_t>(BlockPool::kMaxPartialCandidates)) cands.resize(BlockPool::kMaxPartialCandidates);
      for (auto [t, b] : cands) {
        const auto& key = blocks_[b].key.second;
        int32_t k = 0;
        while (k < rest && key[i * bs_ + k] == r.tokens[i * bs_ + k]) ++k;
        if (k > h.partial_tokens) {
          h.partial_tokens = k;
          h.partial_src = b;
          if (k == rest) break;
        }
      }
    }
    h.num_tokens = i * bs_ + h.partial_tokens;
    return h;
  }

  bool Allocate(RequestId id, int32_t n, int32_t look, const Hit* hit) {
    auto& r = reqs_.at(id);
    int32_t base = hit ? hit->num_tokens : r.computed;
    int32_t before = hit ? static_cast<int32_t>(hit->blocks.size()) : static_cast<int32_t>(r.table.size());
    int64_t end = static_cast<int64_t>(base) + n + look;
    int32_t after = std::max<int32_t>(before, static_cast<int32_t>((end + bs_ - 1) / bs_));
    int32_t need = after - before;
    if (hit) {
      for (int32_t b : hit->blocks) need += blocks_[b].ref == 0;
      if (hit->partial_src >= 0) need += blocks_[hit->partial_src].ref == 0;
    }
    int32_t cow_first = base / bs_, cow_end = 0;
    if (n > 0) {
      cow_end = std::min<int32_t>(before, (base + n - 1) / bs_ + 1);
      for (int32_t i = cow_first; i < cow_end; ++i) need += NeedsCow(r.table[i]);
    }
    if (need > static_cast<int32_t>(free_.size())) {
      ++failures_;
      return false;
    }
    if (hit) {
      for (int32_t b : hit->blocks) {
        Touch(b);
        r.table.push_back(b);
      }
      if (hit->partial_src >= 0) Touch(hit->partial_src);
      r.computed = hit->num_tokens;
    }
    for (int32_t i = cow_first; i < cow_end; ++i) {
      int32_t b = r.table[i];
      if (!NeedsCow(b)) continue;
      int32_t dst = Pop();
      if (i * bs_ < base) {
        copies_.push_back({b, dst});
        ++cow_;
      } else {
        Release(b);
        DropDeadCopies();
      }
      r.table[i] = dst;
    }
    while (static_cast<int32_t>(r.table.size()) < after) r.table.push_back(Pop());
    if (hit && hit->partial_src >= 0) {
      copies_.push_back({hit->partial_src, r.table[hit->blocks.size()]});
      ++partial_copies_;
    }
    return true;
  }

  void Commit(RequestId id, int32_t n) {
    auto& r = reqs_.at(id);
    int32_t old_full = r.computed / bs_;
    r.computed += n;
    for (int32_t i = old_full; i < r.computed / bs_; ++i) {
      int32_t b = r.table[i];
      if (blocks_[b].cached) continue;
      Key key = KeyOf(r, (i + 1) * bs_);
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        cache_[key] = b;
        blocks_[b].cached = true;
        blocks_[b].key = key;
        blocks_[b].cache_time = ++clock_;
        continue;
      }
      int32_t x = it->second;
      Touch(x);
      Release(b);
      r.table[i] = x;
      DropDeadCopies();
    }
  }

  void Free(RequestId id) {
    auto& r = reqs_.at(id);
    for (size_t i = r.table.size(); i > 0; --i) Release(r.table[i - 1]);
    DropDeadCopies();
    reqs_.erase(id);
  }

  void Fork(RequestId parent, RequestId child) {
    Req c = reqs_.at(parent);
    c.table.resize(std::min<size_t>(c.table.size(), (c.computed + bs_ - 1) / bs_));
    for (int32_t b : c.table) Touch(b);
    reqs_[child] = c;
  }

  void Rollback(RequestId id, int32_t k) {
    auto& r = reqs_.at(id);
    int32_t len = static_cast<int32_t>(r.tokens.size()) - k;
    r.tokens.resize(len);
    r.computed = std::min(r.computed, len);
    size_t keep = std::min<size_t>(r.table.size(), (len + bs_ - 1) / bs_);
    for (size_t i = r.table.size(); i > keep; --i) Release(r.table[i - 1]);
    r.table.resize(keep);
    DropDeadCopies();
    for (size_t i = r.computed / bs_; i < r.table.size(); ++i) {
      int32_t b = r.table[i];
      if (blocks_[b].cached && blocks_[b].ref - Pins(b) == 1) {
        cache_.erase(blocks_[b].key);
        blocks_[b].cached = false;
      }
    }
  }

  std::vector<BlockCopy> Take() {
    auto out = copies_;
    copies_.clear();
    for (auto [src, dst] : out) Release(src);
    return out;
  }

  // ---- state for comparison ----
  std::vector<int32_t> FreeOrder() const { return {free_.begin(), free_.end()}; }
  std::vector<int32_t> Table(RequestId id) const { return reqs_.at(id).table; }
  int32_t Computed(RequestId id) const { return reqs_.at(id).computed; }
  int32_t Ref(int32_t b) const { return blocks_[b].ref; }
  bool Cached(int32_t b) const { return blocks_[b].cached; }
  const std::vector<BlockCopy>& Copies() const { return copies_; }
  int64_t evictions() const { return evictions_; }
  int64_t cow() const { return cow_; }
  int64_t partial_copies() const { return partial_copies_; }
  int64_t failures() const { return failures_; }

 private:
  struct Block {
    int32_t ref = 0;
    bool cached = false;
    Key key;
    int64_t cache_time = 0;
  };
  struct Req {
    std::vector<int32_t> tokens;
    std::vector<int32_t> table;
    int32_t computed = 0;
    uint64_t salt = 0;
  };

  Key KeyOf(const Req& r, int32_t len) const { return {r.salt, std::vector<int32_t>(r.tokens.begin(), r.tokens.begin() + len)}; }
  int32_t Pins(int32_t b) const {
    int32_t p = 0;
    for (auto [src, dst] : copies_) p += src == b;
    return p;
  }
  bool NeedsCow(int32_t b) const { return blocks_[b].ref - Pins(b) > 1 || blocks_[b].cached; }
  int32_t Pop() {
    int32_t b = free_.front();
    free_.pop_front();
    if (blocks_[b].cached) {
      cache_.erase(blocks_[b].key);
      blocks_[b].cached = false;
      ++evictions_;
    }
    blocks_[b].ref = 1;
    return b;
  }
  void Touch(int32_t b) {
    if (blocks_[b].ref++ == 0) free_.remove(b);
  }
  void Release(int32_t b) {
    if (--blocks_[b].ref > 0) return;
    if (blocks_[b].cached) {
      free_.push_back(b);
    } else {
      free_.push_front(b);
    }
  }
  void DropDeadCopies() {
    std::vector<BlockCopy> kept;
    for (auto c : copies_) {
      if (blocks_[c.second].ref == 0) {
        Release(c.first);
      } else {
        kept.push_back(c);
      }
    }
    copies_ = kept;
  }

  int32_t bs_;
  bool partial_;
  std::vector<Block> blocks_;
  std::list<int32_t> free_;
  std::map<Key, int32_t> cache_;
  std::map<RequestId, Req> reqs_;
  std::vector<BlockCopy> copies_;
  int64_t clock_ = 0, evictions_ = 0, cow_ = 0, partial_copies_ = 0, failures_ = 0;
};

TEST(KvCacheManagerReference, MatchesNaiveModelBlockForBlock) {
  int64_t total_ops = 0, total_evictions = 0, total_cow = 0, total_partial = 0, total_failures = 0;
  for (int seq = 0; seq < 400; ++seq) {
    std::mt19937_64 rng(seq * 7919 + 3);
    auto U = [&](int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng); };
    const int32_t bs = std::vector<int32_t>{1, 2, 4, 16}[seq % 4];
    const int32_t num_blocks = bs == 16 ? 6 + seq % 10 : 10 + seq % 30;
    const bool partial = seq % 3 != 0;
    KvManagerConfig c;
    c.num_blocks = num_blocks;
    c.block_size = bs;
    c.enable_partial_block_reuse = partial;
    c.hash_seed = seq;
    auto m = std::move(KvCacheManager::Create(c)).value();
    NaiveKvCache ref(num_blocks, bs, partial);
    std::vector<int32_t> base(6 * bs + 3);
    for (auto& t : base) t = U(0, 4);
    std::map<RequestId, std::pair<int32_t, int32_t>> uncommitted;  // id -> tokens allocated, not yet committed
    std::vector<RequestId> live;
    RequestId next = 1;
    auto tokens_of = [&](RequestId id) { auto t = m->Tokens(id); return std::vector<int32_t>(t.begin(), t.end()); };

    for (int op = 0; op < 200; ++op, ++total_ops) {
      int kind = U(0, 99);
      if (kind < 20 && live.size() < 10) {  // add + prefill with prefix hit
        RequestId id = next++;
        std::vector<int32_t> t(base.begin(), base.begin() + U(0, static_cast<int32_t>(base.size())));
        for (int i = U(1, 2 * bs); i > 0; --i) t.push_back(U(0, 4));
        uint64_t salt = U(0, 4) == 0;
        m->AddRequest(id, t, salt);
        ref.Add(id, t, salt);
        live.push_back(id);
        PrefixHit h = m->GetComputedBlocks(id);
        auto rh = ref.Lookup(id);
        ASSERT_EQ(h.blocks, rh.blocks);
        ASSERT_EQ(h.partial_src, rh.partial_src);
        ASSERT_EQ(h.partial_tokens, rh.partial_tokens);
        int32_t n = U(1, static_cast<int32_t>(t.size()) - h.num_tokens);
        int32_t look = U(0, 2) ? 0 : U(1, 3);
        bool ok = m->AllocateSlots(id, n, look, &h);
        ASSERT_EQ(ok, ref.Allocate(id, n, look, &rh));
        if (ok) uncommitted[id] = {n, 0};
      } else if (kind < 45 && !live.empty()) {  // allocate for a running request (maybe decode)
        RequestId id = live[U(0, static_cast<int>(live.size()) - 1)];
        if (uncommitted.count(id) || m->BlockTable(id).empty()) continue;
        if (m->NumComputedTokens(id) == m->NumTokens(id)) {
          std::vector<int32_t> t{U(0, 4)};
          m->AppendTokens(id, t);
          ref.Append(id, t);
        }
        int32_t n = U(1, m->NumTokens(id) - m->NumComputedTokens(id));
        int32_t look = U(0, 2) ? 0 : U(1, 3);
        bool ok = m->AllocateSlots(id, n, look);
        ASSERT_EQ(ok, ref.Allocate(id, n, look, nullptr));
        if (ok) uncommitted[id] = {n, 0};
      } else if (kind < 60) {  // end of step: take copies, commit what was scheduled
        ASSERT_EQ(m->TakePendingCopies(), ref.Take());
        for (auto [id, nn] : uncommitted) {
          m->CommitComputed(id, nn.first);
          ref.Commit(id, nn.first);
        }
        uncommitted.clear();
      } else if (kind < 68 && !live.empty() && live.size() < 10) {
        RequestId p = live[U(0, static_cast<int>(live.size()) - 1)];
        if (uncommitted.count(p)) continue;
        RequestId id = next++;
        m->Fork(p, id);
        ref.Fork(p, id);
        live.push_back(id);
      } else if (kind < 80 && !live.empty()) {
        size_t i = U(0, static_cast<int>(live.size()) - 1);
        m->Free(live[i]);
        ref.Free(live[i]);
        uncommitted.erase(live[i]);
        live.erase(live.begin() + i);
      } else if (kind < 90 && !live.empty()) {
        RequestId id = live[U(0, static_cast<int>(live.size()) - 1)];
        if (uncommitted.count(id)) continue;
        int32_t k = U(0, std::min<int32_t>(m->NumTokens(id), 2 * bs + 1));
        m->Rollback(id, k);
        ref.Rollback(id, k);
      } else if (!live.empty()) {
        RequestId id = live[U(0, static_cast<int>(live.size()) - 1)];
        std::vector<int32_t> t(U(1, bs + 1));
        for (auto& x : t) x = U(0, 4);
        m->AppendTokens(id, t);
        ref.Append(id, t);
      }
      // Compare everything.
      m->CheckInvariants();
      ASSERT_EQ(m->pool().FreeQueueOrder(), ref.FreeOrder()) << "seq " << seq << " op " << op;
      for (RequestId id : live) {
        auto t = m->BlockTable(id);
        ASSERT_EQ(std::vector<int32_t>(t.begin(), t.end()), ref.Table(id)) << "seq " << seq << " op " << op;
        ASSERT_EQ(m->NumComputedTokens(id), ref.Computed(id));
        (void)tokens_of;
      }
      for (int32_t b = 0; b < num_blocks; ++b) {
        ASSERT_EQ(m->pool().ref_count(b), ref.Ref(b)) << "block " << b;
        ASSERT_EQ(m->pool().is_cached(b), ref.Cached(b)) << "block " << b;
      }
      KvStats s = m->Stats();
      ASSERT_EQ(s.evictions, ref.evictions());
      ASSERT_EQ(s.cow_copies, ref.cow());
      ASSERT_EQ(s.partial_reuse_copies, ref.partial_copies());
      ASSERT_EQ(s.allocation_failures, ref.failures());
    }
    KvStats s = m->Stats();
    total_evictions += s.evictions;
    total_cow += s.cow_copies;
    total_partial += s.partial_reuse_copies;
    total_failures += s.allocation_failures;
  }
  EXPECT_GT(total_evictions, 100);
  EXPECT_GT(total_cow, 50);
  EXPECT_GT(total_partial, 50);
  EXPECT_GT(total_failures, 50);
  std::printf("[reference] %lld ops: %lld evictions, %lld CoW copies, %lld partial-reuse copies, %lld out-of-blocks\n",
              static_cast<long long>(total_ops), static_cast<long long>(total_evictions), static_cast<long long>(total_cow),
              static_cast<long long>(total_partial), static_cast<long long>(total_failures));
}

}  // namespace
}  // namespace kvserve
