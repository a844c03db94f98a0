#include "kv/kv_cache_manager.h"

#include <algorithm>
#include <string>

namespace kvserve {

// What an AllocateSlots call would do, computed without touching anything.
struct KvCacheManager::Plan {
  int32_t base = 0;          // computed tokens once the hit is applied
  int32_t table_before = 0;  // block-table length once the hit is applied
  int32_t table_after = 0;   // block-table length the allocation needs
  int32_t cow_first = 0;     // block-table indices [cow_first, cow_end) receive writes
  int32_t cow_end = 0;
  int32_t num_cow = 0;       // of those, blocks shared with another table or cached
  int32_t num_revive = 0;    // free hit blocks (and partial source) that leave the free queue
  int32_t need() const { return (table_after - table_before) + num_cow + num_revive; }
};

StatusOr<std::unique_ptr<KvCacheManager>> KvCacheManager::Create(const KvManagerConfig& config) {
  if (config.num_blocks < 0) {
    return Status::InvalidArgument("kv cache: num_blocks " + std::to_string(config.num_blocks) + " is negative");
  }
  if (config.block_size < 1 || config.block_size > BlockHasher::kMaxBlockSize) {
    return Status::InvalidArgument("kv cache: block_size " + std::to_string(config.block_size) + " outside [1, " +
                                   std::to_string(BlockHasher::kMaxBlockSize) + "]");
  }
  return std::make_unique<KvCacheManager>(config);
}

KvCacheManager::KvCacheManager(const KvManagerConfig& config)
    : config_(config), hasher_(config.hash_seed), pool_(config.num_blocks, config.block_size), pin_count_(config.num_blocks, 0) {
  if (!config_.enable_prefix_caching) config_.enable_partial_block_reuse = false;
  counters_.num_blocks = config_.num_blocks;
  counters_.block_size = config_.block_size;
  counters_.bytes_per_block = config_.bytes_per_block;
}

KvCacheManager::Request& KvCacheManager::Get(RequestId id) {
  auto it = requests_.find(id);
  KV_CHECK_MSG(it != requests_.end(), "unknown request " + std::to_string(id));
  return it->second;
}

const KvCacheManager::Request& KvCacheManager::Get(RequestId id) const {
  auto it = requests_.find(id);
  KV_CHECK_MSG(it != requests_.end(), "unknown request " + std::to_string(id));
  return it->second;
}

int32_t KvCacheManager::NumTokens(RequestId id) const { return static_cast<int32_t>(Get(id).tokens.size()); }
int32_t KvCacheManager::NumComputedTokens(RequestId id) const { return Get(id).num_computed; }
std::span<const int32_t> KvCacheManager::Tokens(RequestId id) const { return Get(id).tokens; }
std::span<const int32_t> KvCacheManager::BlockTable(RequestId id) const { return Get(id).blocks; }

void KvCacheManager::ExtendHashes(Request& r) {
  if (!config_.enable_prefix_caching) return;
  const size_t bs = config_.block_size;
  while (r.block_hashes.size() < r.tokens.size() / bs) {
    size_t i = r.block_hashes.size();
    BlockHash parent = i == 0 ? hasher_.root() : r.block_hashes[i - 1];
    r.block_hashes.push_back(hasher_.Hash(parent, r.extra_key, std::span<const int32_t>(r.tokens).subspan(i * bs, bs)));
  }
}

void KvCacheManager::AddRequest(RequestId id, std::span<const int32_t> tokens, uint64_t extra_key) {
  KV_CHECK_MSG(!HasRequest(id), "request " + std::to_string(id) + " already exists");
  Request& r = requests_[id];
  r.tokens.assign(tokens.begin(), tokens.end());
  r.extra_key = extra_key;
  ExtendHashes(r);
}

void KvCacheManager::AppendTokens(RequestId id, std::span<const int32_t> tokens) {
  Request& r = Get(id);
  r.tokens.insert(r.tokens.end(), tokens.begin(), tokens.end());
  ExtendHashes(r);
}

PrefixHit KvCacheManager::GetComputedBlocks(RequestId id) const {
  const Request& r = Get(id);
  PrefixHit hit;
  const int32_t n = static_cast<int32_t>(r.tokens.size());
  hit.num_query_tokens = n;
  if (!config_.enable_prefix_caching || n <= 1) return hit;
  const int32_t bs = config_.block_size;
  const int32_t max_hit = n - 1;
  std::span<const int32_t> toks(r.tokens);
  BlockHash parent = hasher_.root();
  int32_t i = 0;
  while ((i + 1) * bs <= max_hit) {
    int32_t b = pool_.Lookup(r.block_hashes[i], parent, r.extra_key, toks.subspan(i * bs, bs));
    if (b < 0) break;
    hit.blocks.push_back(b);
    if (pool_.ref_count(b) == 0) ++hit.num_evictable;
    parent = r.block_hashes[i];
    ++i;
  }
  if (config_.enable_partial_block_reuse) {
    int32_t rest = std::min(bs, max_hit - i * bs);
    if (rest > 0) {
      PartialMatch m = pool_.LongestPartialMatch(parent, r.extra_key, toks.subspan(i * bs, rest));
      if (m.num_tokens > 0) {
        hit.partial_src = m.block;
        hit.partial_tokens = m.num_tokens;
        if (pool_.ref_count(m.block) == 0) ++hit.num_evictable;
      }
    }
  }
  hit.num_tokens = i * bs + hit.partial_tokens;
  return hit;
}

KvCacheManager::Plan KvCacheManager::MakePlan(const Request& r, int32_t num_new_tokens, int32_t num_lookahead_tokens,
                                              const PrefixHit* hit) const {
  KV_CHECK(num_new_tokens >= 0 && num_lookahead_tokens >= 0);
  const int32_t bs = config_.block_size;
  Plan p;
  p.base = r.num_computed;
  p.table_before = static_cast<int32_t>(r.blocks.size());
  if (hit != nullptr) {
    KV_CHECK_MSG(r.blocks.empty() && r.num_computed == 0, "a prefix hit applies only to a request without blocks");
    // The hit must still describe the cache: a stale hit is a caller bug.
    BlockHash parent = hasher_.root();
    for (size_t i = 0; i < hit->blocks.size(); ++i) {
      int32_t b = hit->blocks[i];
      KV_CHECK_MSG(i < r.block_hashes.size() && pool_.is_cached(b) && pool_.hash(b) == r.block_hashes[i],
                   "stale PrefixHit: block " + std::to_string(b) + " no longer holds the prefix");
      if (pool_.ref_count(b) == 0) ++p.num_revive;
      parent = r.block_hashes[i];
    }
    if (hit->partial_src >= 0) {
      int32_t b = hit->partial_src;
      size_t off = hit->blocks.size() * bs;
      KV_CHECK_MSG(pool_.is_cached(b) && pool_.parent_hash(b) == parent && hit->partial_tokens > 0 &&
                       off + hit->partial_tokens <= r.tokens.size() &&
                       std::equal(r.tokens.begin() + off, r.tokens.begin() + off + hit->partial_tokens,
                                  pool_.tokens(b).begin()),
                   "stale PrefixHit: partial source block " + std::to_string(b) + " changed");
      if (pool_.ref_count(b) == 0) ++p.num_revive;
    }
    KV_CHECK(hit->num_tokens == static_cast<int32_t>(hit->blocks.size()) * bs + hit->partial_tokens);
    p.base = hit->num_tokens;
    p.table_before = static_cast<int32_t>(hit->blocks.size());
  }
  const int64_t end = static_cast<int64_t>(p.base) + num_new_tokens + num_lookahead_tokens;
  p.table_after = std::max<int32_t>(p.table_before, static_cast<int32_t>((end + bs - 1) / bs));
  if (num_new_tokens > 0) {
    p.cow_first = p.base / bs;
    p.cow_end = std::min<int32_t>(p.table_before, (p.base + num_new_tokens - 1) / bs + 1);
    for (int32_t i = p.cow_first; i < p.cow_end; ++i) {
      int32_t b = r.blocks[i];
      if (pool_.ref_count(b) - pin_count_[b] > 1 || pool_.is_cached(b)) ++p.num_cow;
    }
  }
  return p;
}

int32_t KvCacheManager::NumBlocksNeeded(RequestId id, int32_t num_new_tokens, int32_t num_lookahead_tokens,
                                        const PrefixHit* hit) const {
  return MakePlan(Get(id), num_new_tokens, num_lookahead_tokens, hit).need();
}

bool KvCacheManager::AllocateSlots(RequestId id, int32_t num_new_tokens, int32_t num_lookahead_tokens,
                                   const PrefixHit* hit) {
  Request& r = Get(id);
  const Plan p = MakePlan(r, num_new_tokens, num_lookahead_tokens, hit);
  if (p.need() > pool_.num_free()) {
    ++counters_.allocation_failures;
    return false;
  }
  const int32_t bs = config_.block_size;
  // Order matters: revive hit blocks and pin the partial source before taking new
  // blocks from the free queue, or the pops could evict them.
  if (hit != nullptr) {
    ++counters_.prefix_queries;
    counters_.prefix_query_tokens += hit->num_query_tokens;
    counters_.prefix_hit_tokens += hit->num_tokens;
    for (int32_t b : hit->blocks) {
      pool_.Touch(b);
      r.blocks.push_back(b);
    }
    if (hit->partial_src >= 0) {
      pool_.Touch(hit->partial_src);  // the pin of the copy queued below
      ++pin_count_[hit->partial_src];
    }
    r.num_computed = hit->num_tokens;
    r.num_cached_blocks = static_cast<int32_t>(hit->blocks.size());
  }
  for (int32_t i = p.cow_first; i < p.cow_end; ++i) {
    int32_t b = r.blocks[i];
    if (!(pool_.ref_count(b) - pin_count_[b] > 1 || pool_.is_cached(b))) continue;
    int32_t dst = pool_.AllocateOne();
    if (i * bs < p.base) {
      // Our reference becomes the pin that keeps the source alive until the copy runs.
      pending_copies_.emplace_back(b, dst);
      ++pin_count_[b];
      ++counters_.cow_copies;
    } else {
      pool_.Release(b);  // nothing valid in it yet: no copy needed
      if (pool_.ref_count(b) == 0 && !pending_copies_.empty()) DropCopiesIntoFreeBlocks();
    }
    r.blocks[i] = dst;
  }
  while (static_cast<int32_t>(r.blocks.size()) < p.table_after) r.blocks.push_back(pool_.AllocateOne());
  if (hit != nullptr && hit->partial_src >= 0) {
    pending_copies_.emplace_back(hit->partial_src, r.blocks[hit->blocks.size()]);
    ++counters_.partial_reuse_copies;
    counters_.partial_reuse_tokens += hit->partial_tokens;
  }
  counters_.peak_used_blocks = std::max(counters_.peak_used_blocks, pool_.num_used());
  return true;
}

void KvCacheManager::CommitComputed(RequestId id, int32_t num_tokens) {
  Request& r = Get(id);
  const int32_t bs = config_.block_size;
  KV_CHECK_MSG(num_tokens >= 0 && r.num_computed + num_tokens <= static_cast<int32_t>(r.tokens.size()),
               "CommitComputed past the known tokens");
  KV_CHECK_MSG(r.num_computed + num_tokens <= static_cast<int32_t>(r.blocks.size()) * bs,
               "CommitComputed past the allocated slots");
  r.num_computed += num_tokens;
  if (!config_.enable_prefix_caching) return;
  const int32_t full = r.num_computed / bs;
  std::span<const int32_t> toks(r.tokens);
  for (int32_t i = r.num_cached_blocks; i < full; ++i) {
    int32_t b = r.blocks[i];
    if (pool_.is_cached(b)) {
      KV_CHECK(pool_.hash(b) == r.block_hashes[i]);
      continue;
    }
    BlockHash parent = i == 0 ? hasher_.root() : r.block_hashes[i - 1];
    auto block_tokens = toks.subspan(static_cast<size_t>(i) * bs, bs);
    if (pool_.Cache(b, r.block_hashes[i], parent, r.extra_key, block_tokens)) continue;
    // Another block already holds exactly these K/V (two requests prefilled the same
    // prefix in one step): share that one and give ours back, so the prefix is
    // stored once. Only a 64-bit hash collision (verification fails) keeps ours.
    int32_t cached = pool_.Lookup(r.block_hashes[i], parent, r.extra_key, block_tokens);
    if (cached < 0) continue;
    pool_.Touch(cached);
    pool_.Release(b);
    r.blocks[i] = cached;
    ++counters_.dedup_blocks;
    if (pool_.ref_count(b) == 0 && !pending_copies_.empty()) DropCopiesIntoFreeBlocks();
  }
  r.num_cached_blocks = std::max(r.num_cached_blocks, full);
}

void KvCacheManager::ReleaseTail(Request& r, size_t keep_blocks) {
  bool dropped_copy_target = false;
  for (size_t i = r.blocks.size(); i > keep_blocks; --i) {
    int32_t b = r.blocks[i - 1];
    pool_.Release(b);
    if (pool_.ref_count(b) == 0 && !pending_copies_.empty()) dropped_copy_target = true;
  }
  if (r.blocks.size() > keep_blocks) r.blocks.resize(keep_blocks);
  if (dropped_copy_target) DropCopiesIntoFreeBlocks();
}

// A copy whose destination was released before the engine ran it (the request was
// preempted or rolled back in the same step) must not run: the block may be handed
// to another request in this step. Its source pin goes too.
void KvCacheManager::DropCopiesIntoFreeBlocks() {
  size_t kept = 0;
  for (size_t i = 0; i < pending_copies_.size(); ++i) {
    auto [src, dst] = pending_copies_[i];
    if (pool_.ref_count(dst) == 0) {
      --pin_count_[src];
      pool_.Release(src);
    } else {
      pending_copies_[kept++] = pending_copies_[i];
    }
  }
  pending_copies_.resize(kept);
}

void KvCacheManager::Free(RequestId id) {
  Request& r = Get(id);
  ReleaseTail(r, 0);
  requests_.erase(id);
}

void KvCacheManager::Fork(RequestId parent, RequestId child) {
  KV_CHECK_MSG(!HasRequest(child), "request " + std::to_string(child) + " already exists");
  const Request& p = Get(parent);
  Request c;
  c.tokens = p.tokens;
  c.block_hashes = p.block_hashes;
  c.num_computed = p.num_computed;
  c.num_cached_blocks = p.num_cached_blocks;
  c.extra_key = p.extra_key;
  const int32_t bs = config_.block_size;
  size_t share = std::min<size_t>(p.blocks.size(), (p.num_computed + bs - 1) / bs);
  c.blocks.assign(p.blocks.begin(), p.blocks.begin() + share);
  for (int32_t b : c.blocks) pool_.Touch(b);
  requests_.emplace(child, std::move(c));
}

void KvCacheManager::Rollback(RequestId id, int32_t num_tokens) {
  Request& r = Get(id);
  KV_CHECK_MSG(num_tokens >= 0 && num_tokens <= static_cast<int32_t>(r.tokens.size()), "Rollback past the start");
  const int32_t bs = config_.block_size;
  const int32_t new_len = static_cast<int32_t>(r.tokens.size()) - num_tokens;
  r.tokens.resize(new_len);
  if (r.block_hashes.size() > static_cast<size_t>(new_len / bs)) r.block_hashes.resize(new_len / bs);
  r.num_computed = std::min(r.num_computed, new_len);
  r.num_cached_blocks = std::min(r.num_cached_blocks, r.num_computed / bs);
  ReleaseTail(r, std::min<size_t>(r.blocks.size(), (new_len + bs - 1) / bs));
  // Blocks that will be rewritten must not keep describing the old tokens. If we
  // alone hold one, drop its cache entry now; a shared one is copied on write.
  for (size_t i = r.num_computed / bs; i < r.blocks.size(); ++i) {
    int32_t b = r.blocks[i];
    if (pool_.is_cached(b) && pool_.ref_count(b) - pin_count_[b] == 1) pool_.Uncache(b);
  }
}

std::vector<BlockCopy> KvCacheManager::TakePendingCopies() {
  std::vector<BlockCopy> out;
  out.swap(pending_copies_);
  for (auto [src, dst] : out) {
    --pin_count_[src];
    pool_.Release(src);
  }
  return out;
}

KvStats KvCacheManager::Stats() const {
  KvStats s = counters_;
  const int32_t bs = config_.block_size;
  s.num_requests = static_cast<int32_t>(requests_.size());
  s.used_blocks = pool_.num_used();
  s.free_blocks = pool_.num_free();
  s.cached_blocks = pool_.num_cached();
  std::vector<int32_t> fill(config_.num_blocks, 0);
  for (const auto& [id, r] : requests_) {
    for (size_t i = 0; i < r.blocks.size(); ++i) {
      int64_t f = std::clamp<int64_t>(static_cast<int64_t>(r.num_computed) - static_cast<int64_t>(i) * bs, 0, bs);
      fill[r.blocks[i]] = std::max<int32_t>(fill[r.blocks[i]], static_cast<int32_t>(f));
    }
  }
  s.cached_free_blocks = 0;
  s.filled_slots = 0;
  for (int32_t b = 0; b < config_.num_blocks; ++b) {
    if (pool_.ref_count(b) == 0) {
      if (pool_.is_cached(b)) ++s.cached_free_blocks;
    } else {
      s.filled_slots += fill[b];
    }
  }
  s.allocated_slots = static_cast<int64_t>(s.used_blocks) * bs;
  s.internal_fragmentation =
      s.allocated_slots == 0 ? 0.0 : 1.0 - static_cast<double>(s.filled_slots) / static_cast<double>(s.allocated_slots);
  s.prefix_hit_rate = s.prefix_query_tokens == 0
                          ? 0.0
                          : static_cast<double>(s.prefix_hit_tokens) / static_cast<double>(s.prefix_query_tokens);
  s.evictions = pool_.evictions();
  return s;
}

void KvCacheManager::CheckInvariants() const {
  pool_.CheckInvariants(hasher_);
  const int32_t bs = config_.block_size;
  std::vector<int32_t> refs(config_.num_blocks, 0);
  std::vector<int64_t> stamp(config_.num_blocks, -1);  // last request (by visit order) holding the block
  int64_t visit = 0;
  for (const auto& [id, r] : requests_) {
    ++visit;
    KV_CHECK_MSG(r.num_computed >= 0 && r.num_computed <= static_cast<int32_t>(r.tokens.size()),
                 "computed tokens exceed known tokens");
    KV_CHECK_MSG(static_cast<int64_t>(r.blocks.size()) * bs >= r.num_computed, "block table does not cover computed tokens");
    KV_CHECK(r.num_cached_blocks >= 0 && r.num_cached_blocks <= r.num_computed / bs);
    if (config_.enable_prefix_caching) {
      KV_CHECK_MSG(r.num_cached_blocks == r.num_computed / bs, "computed full blocks not offered to the cache");
      // Every computed full block is in the cache (and so reachable by lookups),
      // unless a hash collision kept it out.
      for (int32_t i = 0; i < r.num_cached_blocks; ++i) {
        int32_t b = r.blocks[i];
        KV_CHECK_MSG(pool_.is_cached(b) || (pool_.HasHash(r.block_hashes[i]) &&
                                            pool_.Lookup(r.block_hashes[i], i == 0 ? hasher_.root() : r.block_hashes[i - 1],
                                                         r.extra_key,
                                                         std::span<const int32_t>(r.tokens).subspan(static_cast<size_t>(i) * bs, bs)) < 0),
                     "a computed full block is missing from the prefix cache");
      }
    }
    if (config_.enable_prefix_caching) {
      KV_CHECK_MSG(r.block_hashes.size() == r.tokens.size() / bs, "block hashes out of step with tokens");
      BlockHash parent = hasher_.root();
      for (size_t i = 0; i < r.block_hashes.size(); ++i) {
        KV_CHECK_MSG(r.block_hashes[i] ==
                         hasher_.Hash(parent, r.extra_key, std::span<const int32_t>(r.tokens).subspan(i * bs, bs)),
                     "request block hash chain is wrong");
        parent = r.block_hashes[i];
      }
    }
    for (size_t i = 0; i < r.blocks.size(); ++i) {
      int32_t b = r.blocks[i];
      KV_CHECK_MSG(b >= 0 && b < config_.num_blocks, "block id out of range");
      KV_CHECK_MSG(stamp[b] != visit, "block appears twice in one block table");
      stamp[b] = visit;
      ++refs[b];
      if (pool_.is_cached(b)) {
        // A cached block may sit partially valid in a table (after Rollback), but
        // its valid part must be the request's tokens.
        const int64_t valid_end = std::min<int64_t>(r.num_computed, static_cast<int64_t>(i + 1) * bs);
        auto stored = pool_.tokens(b);
        for (int64_t j = static_cast<int64_t>(i) * bs; j < valid_end; ++j) {
          KV_CHECK_MSG(stored[j - static_cast<int64_t>(i) * bs] == r.tokens[j], "cached block tokens differ from the request's");
        }
        if (static_cast<int64_t>(i + 1) * bs <= r.num_computed && i < r.block_hashes.size()) {
          KV_CHECK_MSG(pool_.hash(b) == r.block_hashes[i], "cached block hash differs from the request's");
        }
      }
    }
  }
  std::vector<int32_t> pins(config_.num_blocks, 0);
  for (auto [src, dst] : pending_copies_) {
    KV_CHECK_MSG(src != dst && pool_.ref_count(dst) > 0, "pending copy into a free block");
    ++refs[src];
    ++pins[src];
  }
  for (int32_t b = 0; b < config_.num_blocks; ++b) {
    KV_CHECK_MSG(pins[b] == pin_count_[b], "pin counts out of step");
    KV_CHECK_MSG(refs[b] == pool_.ref_count(b),
                 "block " + std::to_string(b) + ": ref count " + std::to_string(pool_.ref_count(b)) + " but " +
                     std::to_string(refs[b]) + " references");
  }
}

}  // namespace kvserve
