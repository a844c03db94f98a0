// KvCacheManager: the only face of the paged KV cache the scheduler sees.
//
// It owns the block pool and, per request, the token ids (to hash and verify
// prefix-cache blocks), the block table and the number of computed tokens (tokens
// whose K/V are in the cache). It never runs the model: it hands out block ids and
// reports the block copies (copy-on-write, partial-block reuse) the engine must
// pass to Backend::CopyBlocks before the next forward pass.
//
// Token accounting (one model for prefill, chunked prefill, prefix hits, decode and
// speculation): a request has NumTokens() known tokens, of which
// NumComputedTokens() have K/V in the cache. The block table always covers the
// computed tokens and may reserve slots beyond them. Token p lives in block
// BlockTable()[p / block_size] at offset p % block_size.
//
// One step for request r, as the engine drives it:
//   new request:  AddRequest(r, prompt); hit = GetComputedBlocks(r);
//                 n = min(budget, NumTokens(r) - hit.num_tokens);
//                 if (!AllocateSlots(r, n, lookahead, &hit)) -> leave it waiting
//   running:      AllocateSlots(r, n, lookahead) (n = 1 for a decode step)
//   after all allocations of the step: copies = TakePendingCopies() -> Backend::CopyBlocks
//   forward pass with context_len = NumComputedTokens(r), num_tokens = n
//   then:         CommitComputed(r, n); AppendTokens(r, {sampled})
//   finished or preempted: Free(r)
//
// Prefix caching: full computed blocks get a chained hash (parent hash, extra key,
// tokens; seeded per config) when CommitComputed covers them; cached blocks are
// immutable. A free block keeps its cache entry until reused. Lookups are const.
//
// Not thread-safe: one engine loop owns the manager.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"
#include "kv/kv_stats.h"
#include "util/status.h"

namespace kvserve {

using RequestId = uint64_t;
using BlockCopy = std::pair<int32_t, int32_t>;  // (src block, dst block), as Backend::CopyBlocks takes them

struct KvManagerConfig {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  // Copy the matching head of a cached block instead of recomputing it.
  // Only with enable_prefix_caching.
  bool enable_partial_block_reuse = true;
  // Seeds the block hashes. Set it per deployment (e.g. random at startup) so that
  // hash values are not predictable from outside; tests fix it.
  uint64_t hash_seed = 0;
  size_t bytes_per_block = 0;  // for reporting only (KvBlockBytes); 0 = unknown
};

// The longest cached prefix of a request's tokens (GetComputedBlocks).
struct PrefixHit {
  std::vector<int32_t> blocks;  // cached full blocks covering the first blocks.size() * block_size tokens
  int32_t partial_src = -1;     // cached block whose first partial_tokens tokens match the next tokens; -1 if none
  int32_t partial_tokens = 0;
  int32_t num_tokens = 0;       // tokens the hit provides: blocks.size() * block_size + partial_tokens
  int32_t num_query_tokens = 0; // tokens looked up
  // Hit blocks (and partial_src) that are free right now: reviving them takes them
  // out of the free queue, so AllocateSlots counts them against free blocks.
  int32_t num_evictable = 0;
};

class KvCacheManager {
 public:
  // Errors: num_blocks < 0, block_size outside [1, 256].
  static StatusOr<std::unique_ptr<KvCacheManager>> Create(const KvManagerConfig& config);

  // ---- Request lifecycle ----

  // Registers a request with its known tokens (the prompt). `extra_key` separates
  // caches that must not share blocks (cache salt, adapter id).
  // REQUIRES: !HasRequest(id).
  void AddRequest(RequestId id, std::span<const int32_t> tokens, uint64_t extra_key = 0);
  // Appends known tokens (a sampled token, draft tokens). REQUIRES: HasRequest(id).
  void AppendTokens(RequestId id, std::span<const int32_t> tokens);

  // Longest cached prefix of the request's tokens, capped at NumTokens(id) - 1 so
  // that at least one token is computed (its logits are needed). Const: nothing
  // moves until AllocateSlots applies the hit.
  // REQUIRES: HasRequest(id).
  PrefixHit GetComputedBlocks(RequestId id) const;

  // Blocks AllocateSlots would take from the free queue (new blocks, copy-on-write
  // copies, revived free hit blocks). AllocateSlots succeeds iff this is <= NumFreeBlocks().
  // Same REQUIRES as AllocateSlots.
  int32_t NumBlocksNeeded(RequestId id, int32_t num_new_tokens, int32_t num_lookahead_tokens = 0,
                          const PrefixHit* hit = nullptr) const;

  // Makes room for num_new_tokens tokens to be computed after the computed ones
  // (after the hit's tokens when `hit` is given), plus num_lookahead_tokens slots
  // reserved beyond them (speculative drafts). All or nothing: returns false ("out
  // of blocks", a normal outcome) with no state changed. On success the block table
  // covers NumComputedTokens(id) + num_new_tokens + num_lookahead_tokens; with a hit,
  // NumComputedTokens(id) becomes hit->num_tokens. A shared or cached block that
  // the new tokens would write into is replaced by a private copy (copy-on-write).
  // REQUIRES: HasRequest(id); num_new_tokens, num_lookahead_tokens >= 0;
  //   `hit`, if given, came from GetComputedBlocks(id) with no mutating call on this
  //   manager in between, and the request has no blocks yet (new or preempted).
  [[nodiscard]] bool AllocateSlots(RequestId id, int32_t num_new_tokens, int32_t num_lookahead_tokens = 0,
                                   const PrefixHit* hit = nullptr);

  // Marks the next num_tokens tokens as computed (their K/V were written) and adds
  // the blocks they fill to the prefix cache. A filled block whose contents are
  // already cached in another block is swapped for that block and released (so a
  // prefix prefilled by several requests in one step ends up stored once): re-read
  // BlockTable() after this call.
  // REQUIRES: NumComputedTokens(id) + num_tokens <= NumTokens(id), and the block
  //   table covers them (AllocateSlots).
  void CommitComputed(RequestId id, int32_t num_tokens);

  // Releases the request's blocks, tail first, so that cached blocks of a shared
  // prefix are evicted last, and forgets the request. REQUIRES: HasRequest(id).
  void Free(RequestId id);

  // New request `child` with the parent's tokens, computed tokens and the blocks
  // covering them (shared, ref counts +1). A partially filled tail block stays
  // shared until either side writes into it, which copies it (copy-on-write).
  // REQUIRES: HasRequest(parent), !HasRequest(child).
  void Fork(RequestId parent, RequestId child);

  // Drops the last num_tokens known tokens (rejected speculative tokens).
  // Computed tokens shrink to at most the new length; blocks past the new length
  // are released tail first; a cached block the request alone holds that is now
  // partially valid loses its cache entry (shared ones are copied on the next write).
  // REQUIRES: HasRequest(id), 0 <= num_tokens <= NumTokens(id).
  void Rollback(RequestId id, int32_t num_tokens);

  // Block copies AllocateSlots asked for since the last call, in order. The blocks
  // they read from stay pinned until this call, so the caller must submit the copies
  // to the backend, in order, before the next forward pass and before any later
  // copies. Copies into blocks released meanwhile (Free/Rollback of their request
  // in the same step) are dropped.
  std::vector<BlockCopy> TakePendingCopies();

  // ---- Queries ----
  bool HasRequest(RequestId id) const { return requests_.count(id) != 0; }
  int32_t NumTokens(RequestId id) const;
  int32_t NumComputedTokens(RequestId id) const;
  std::span<const int32_t> Tokens(RequestId id) const;
  // Physical block ids in logical order. Valid until the next mutating call.
  std::span<const int32_t> BlockTable(RequestId id) const;
  int32_t NumFreeBlocks() const { return pool_.num_free(); }
  int32_t block_size() const { return config_.block_size; }
  const KvManagerConfig& config() const { return config_; }
  const BlockPool& pool() const { return pool_; }
  const BlockHasher& hasher() const { return hasher_; }
  // O(num_blocks + total block-table length): for reports, not per step.
  KvStats Stats() const;

  // Aborts via KV_CHECK if any invariant is broken: ref counts equal block-table
  // references plus pins; no block both free and referenced; hash map, child lists
  // and free queue well formed; per-request token/hash/table accounting consistent.
  void CheckInvariants() const;

  explicit KvCacheManager(const KvManagerConfig& config);  // use Create()

 private:
  struct Request {
    std::vector<int32_t> tokens;
    std::vector<BlockHash> block_hashes;  // chained hash of each full block of tokens
    std::vector<int32_t> blocks;
    int32_t num_computed = 0;
    int32_t num_cached_blocks = 0;  // leading blocks already offered to the prefix cache
    uint64_t extra_key = 0;
  };
  struct Plan;

  Request& Get(RequestId id);
  const Request& Get(RequestId id) const;
  void ExtendHashes(Request& r);
  Plan MakePlan(const Request& r, int32_t num_new_tokens, int32_t num_lookahead_tokens, const PrefixHit* hit) const;
  void ReleaseTail(Request& r, size_t keep_blocks);
  void DropCopiesIntoFreeBlocks();

  KvManagerConfig config_;
  BlockHasher hasher_;
  BlockPool pool_;
  std::unordered_map<RequestId, Request> requests_;
  // Copies not yet taken by the engine. Each holds a reference (a pin) on its
  // source block so that the source cannot be reused before the copy runs.
  std::vector<BlockCopy> pending_copies_;
  std::vector<int32_t> pin_count_;  // per block: pending copies reading from it
  KvStats counters_;             // running counters only; Stats() fills the rest
};

}  // namespace kvserve
