#include "kv/block_pool.h"

#include <algorithm>

#include "util/status.h"

namespace kvserve {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      ref_(num_blocks, 0),
      cached_flag_(num_blocks, 0),
      hash_(num_blocks, 0),
      parent_(num_blocks, 0),
      extra_(num_blocks, 0),
      tokens_(static_cast<size_t>(num_blocks) * block_size, 0),
      sib_prev_(num_blocks, -1),
      sib_next_(num_blocks, -1),
      free_(num_blocks) {
  KV_CHECK(num_blocks >= 0);
  KV_CHECK(block_size >= 1 && block_size <= BlockHasher::kMaxBlockSize);
  cached_.reserve(num_blocks);
}

int32_t BlockPool::AllocateOne() {
  int32_t b = free_.PopFront();
  if (is_cached(b)) {
    DropCacheEntry(b);
    ++evictions_;
  }
  KV_CHECK(ref_[b] == 0);
  ref_[b] = 1;
  return b;
}

void BlockPool::Touch(int32_t block) {
  if (ref_[block] == 0) free_.Remove(block);
  ++ref_[block];
}

void BlockPool::Release(int32_t block) {
  KV_CHECK_MSG(ref_[block] > 0, "release of a free block");
  if (--ref_[block] > 0) return;
  if (is_cached(block)) {
    free_.PushBack(block);
  } else {
    free_.PushFront(block);
  }
}

bool BlockPool::Cache(int32_t block, BlockHash hash, BlockHash parent, uint64_t extra_key,
                      std::span<const int32_t> tokens) {
  KV_CHECK(!is_cached(block) && ref_[block] > 0);
  KV_CHECK(tokens.size() == static_cast<size_t>(block_size_));
  auto [it, inserted] = cached_.emplace(hash, block);
  if (!inserted) return false;
  cached_flag_[block] = 1;
  hash_[block] = hash;
  parent_[block] = parent;
  extra_[block] = extra_key;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<size_t>(block) * block_size_);
  // Push onto the front of the parent's child list.
  auto [head, fresh] = children_head_.try_emplace(parent, block);
  sib_prev_[block] = -1;
  sib_next_[block] = -1;
  if (!fresh) {
    sib_next_[block] = head->second;
    sib_prev_[head->second] = block;
    head->second = block;
  }
  return true;
}

void BlockPool::Uncache(int32_t block) {
  KV_CHECK(is_cached(block));
  DropCacheEntry(block);
  // A free uncached block belongs at the front; a referenced one will get there on release.
  if (ref_[block] == 0) {
    free_.Remove(block);
    free_.PushFront(block);
  }
}

void BlockPool::DropCacheEntry(int32_t block) {
  cached_.erase(hash_[block]);
  int32_t prev = sib_prev_[block];
  int32_t next = sib_next_[block];
  if (prev >= 0) {
    sib_next_[prev] = next;
  } else {
    auto it = children_head_.find(parent_[block]);
    KV_CHECK(it != children_head_.end() && it->second == block);
    if (next >= 0) {
      it->second = next;
    } else {
      children_head_.erase(it);
    }
  }
  if (next >= 0) sib_prev_[next] = prev;
  sib_prev_[block] = -1;
  sib_next_[block] = -1;
  cached_flag_[block] = 0;
}

int32_t BlockPool::Lookup(BlockHash hash, BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) const {
  auto it = cached_.find(hash);
  if (it == cached_.end()) return -1;
  int32_t b = it->second;
  if (parent_[b] != parent || extra_[b] != extra_key || tokens.size() != static_cast<size_t>(block_size_)) return -1;
  auto stored = this->tokens(b);
  if (!std::equal(tokens.begin(), tokens.end(), stored.begin())) return -1;
  return b;
}

PartialMatch BlockPool::LongestPartialMatch(BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) const {
  PartialMatch best;
  auto it = children_head_.find(parent);
  if (it == children_head_.end()) return best;
  size_t limit = std::min(tokens.size(), static_cast<size_t>(block_size_));
  int examined = 0;
  for (int32_t b = it->second; b >= 0 && examined < kMaxPartialCandidates; b = sib_next_[b]) {
    if (extra_[b] != extra_key) continue;
    ++examined;
    auto stored = this->tokens(b);
    size_t n = 0;
    while (n < limit && stored[n] == tokens[n]) ++n;
    if (static_cast<int32_t>(n) > best.num_tokens) {
      best.block = b;
      best.num_tokens = static_cast<int32_t>(n);
      if (n == limit) break;  // cannot do better
    }
  }
  return best;
}

std::vector<int32_t> BlockPool::CachedChildren(BlockHash parent) const {
  std::vector<int32_t> out;
  auto it = children_head_.find(parent);
  if (it == children_head_.end()) return out;
  for (int32_t b = it->second; b >= 0; b = sib_next_[b]) out.push_back(b);
  return out;
}

void BlockPool::CheckInvariants(const BlockHasher& hasher) const {
  KV_CHECK_MSG(free_.WellFormed(), "free queue links are broken");
  int32_t cached_count = 0;
  for (int32_t b = 0; b < num_blocks_; ++b) {
    KV_CHECK_MSG(ref_[b] >= 0, "negative ref count");
    KV_CHECK_MSG((ref_[b] == 0) == free_.contains(b), "block is free iff its ref count is 0");
    if (!is_cached(b)) continue;
    ++cached_count;
    auto it = cached_.find(hash_[b]);
    KV_CHECK_MSG(it != cached_.end() && it->second == b, "cached block missing from the hash map");
    KV_CHECK_MSG(hasher.Hash(parent_[b], extra_[b], tokens(b)) == hash_[b], "stored hash does not match stored tokens");
  }
  KV_CHECK_MSG(cached_count == static_cast<int32_t>(cached_.size()), "hash map holds uncached blocks");
  // Every cached block sits in exactly its parent's child list.
  int32_t listed = 0;
  for (const auto& [parent, head] : children_head_) {
    KV_CHECK(head >= 0 && sib_prev_[head] == -1);
    int32_t prev = -1;
    for (int32_t b = head; b >= 0; b = sib_next_[b]) {
      KV_CHECK_MSG(is_cached(b) && parent_[b] == parent && sib_prev_[b] == prev, "child list is broken");
      KV_CHECK(++listed <= cached_count);
      prev = b;
    }
  }
  KV_CHECK_MSG(listed == cached_count, "a cached block is missing from its parent's child list");
  // Free blocks that hold no cache entry sit in front of every cached free block.
  bool seen_cached = false;
  for (int32_t b : free_.ToVector()) {
    if (is_cached(b)) {
      seen_cached = true;
    } else {
      KV_CHECK_MSG(!seen_cached, "uncached free block queued behind a cached one");
    }
  }
}

}  // namespace kvserve
