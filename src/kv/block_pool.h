// BlockPool: the physical KV blocks, their reference counts, the free queue and
// the prefix-cache index. Knows nothing about requests; KVCacheManager does.
//
// Metadata lives in flat arrays indexed by block id. A block is in the free queue
// iff its ref count is 0. Free blocks that hold a cache entry keep it until the
// block is handed out again (lazy eviction), so a later request can still hit them.
// Eviction order: the queue front is reused first; never-hashed blocks are queued
// at the front (nothing worth keeping), cached blocks at the back (LRU).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_hash.h"
#include "kv/free_block_queue.h"

namespace kvserve {

struct PartialMatch {
  int32_t block = -1;      // cached block whose leading tokens match; -1 if none
  int32_t num_tokens = 0;  // how many leading tokens match
};

class BlockPool {
 public:
  // REQUIRES: num_blocks >= 0; 1 <= block_size <= BlockHasher::kMaxBlockSize.
  BlockPool(int32_t num_blocks, int32_t block_size);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_free() const { return free_.size(); }
  int32_t num_used() const { return num_blocks_ - free_.size(); }
  int32_t num_cached() const { return static_cast<int32_t>(cached_.size()); }
  int64_t evictions() const { return evictions_; }

  int32_t ref_count(int32_t block) const { return ref_[block]; }
  bool is_cached(int32_t block) const { return cached_flag_[block] != 0; }
  // REQUIRES: is_cached(block) for the next four.
  BlockHash hash(int32_t block) const { return hash_[block]; }
  BlockHash parent_hash(int32_t block) const { return parent_[block]; }
  uint64_t extra_key(int32_t block) const { return extra_[block]; }
  std::span<const int32_t> tokens(int32_t block) const {
    return {tokens_.data() + static_cast<size_t>(block) * block_size_, static_cast<size_t>(block_size_)};
  }

  // Takes the front block of the free queue, drops any cache entry it still holds
  // (an eviction) and gives it ref count 1. REQUIRES: num_free() > 0.
  int32_t AllocateOne();
  // Adds a reference; a free block leaves the free queue (a cache hit revives it).
  void Touch(int32_t block);
  // Drops a reference. At zero the block joins the free queue: at the back if it
  // holds a cache entry, at the front otherwise. REQUIRES: ref_count(block) > 0.
  void Release(int32_t block);

  // Registers a full, computed block under `hash`. Returns false (block stays
  // uncached) when `hash` is already cached by another block: the first copy wins.
  // REQUIRES: !is_cached(block), ref_count(block) > 0, tokens.size() == block_size().
  bool Cache(int32_t block, BlockHash hash, BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens);
  // Drops the block's cache entry because its contents are about to change.
  // REQUIRES: is_cached(block).
  void Uncache(int32_t block);

  // The cached block for `hash`, verified against parent, extra key and tokens;
  // -1 on a miss or a failed verification (a hash collision).
  int32_t Lookup(BlockHash hash, BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) const;
  // Among cached blocks whose parent is `parent` (same extra key), the one whose
  // leading tokens share the longest common prefix with `tokens`. Ties go to the
  // most recently cached block. Only the kMaxPartialCandidates most recently cached
  // siblings are examined: a popular prefix (a system prompt followed by a chat
  // header) can have thousands of children, and the scan must stay O(1) per lookup.
  static constexpr int kMaxPartialCandidates = 32;
  PartialMatch LongestPartialMatch(BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) const;
  bool HasHash(BlockHash hash) const { return cached_.count(hash) != 0; }
  // Cached blocks whose parent hash is `parent`, most recently cached first.
  std::vector<int32_t> CachedChildren(BlockHash parent) const;

  std::vector<int32_t> FreeQueueOrder() const { return free_.ToVector(); }

  // Checks everything the pool can check alone (free queue links, free <=> ref 0,
  // hash map <=> cached flags, child lists, stored hashes match stored tokens);
  // aborts via KV_CHECK on the first violation.
  void CheckInvariants(const BlockHasher& hasher) const;

 private:
  void DropCacheEntry(int32_t block);

  int32_t num_blocks_;
  int32_t block_size_;
  std::vector<int32_t> ref_;
  std::vector<uint8_t> cached_flag_;
  std::vector<BlockHash> hash_;
  std::vector<BlockHash> parent_;
  std::vector<uint64_t> extra_;
  std::vector<int32_t> tokens_;        // num_blocks * block_size; meaningful while cached
  std::vector<int32_t> sib_prev_;      // intrusive list of blocks sharing a parent hash
  std::vector<int32_t> sib_next_;
  FreeBlockQueue free_;
  std::unordered_map<BlockHash, int32_t> cached_;          // hash -> block
  std::unordered_map<BlockHash, int32_t> children_head_;  // parent hash -> first child block
  int64_t evictions_ = 0;
};

}  // namespace kvserve
