// Point-in-time accounting of a KvCacheManager plus its running counters.
#pragma once

#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace kvserve {

struct KvStats {
  int32_t num_blocks = 0;
  int32_t block_size = 0;
  size_t bytes_per_block = 0;  // 0 when the manager was not told
  int32_t num_requests = 0;

  int32_t used_blocks = 0;         // ref count > 0
  int32_t free_blocks = 0;         // in the free queue, including cached-but-free ones
  int32_t cached_blocks = 0;       // holding a prefix-cache entry, used or free
  int32_t cached_free_blocks = 0;  // cached and evictable
  int32_t peak_used_blocks = 0;

  // Internal fragmentation: allocated token slots (used blocks x block size) that
  // hold no computed token. A block shared by several requests counts once, as
  // full as its fullest user sees it.
  int64_t allocated_slots = 0;
  int64_t filled_slots = 0;
  double internal_fragmentation = 0.0;  // 1 - filled / allocated; 0 when nothing is allocated

  // Prefix cache: counted when a lookup's hit is applied by AllocateSlots.
  int64_t prefix_queries = 0;
  int64_t prefix_query_tokens = 0;
  int64_t prefix_hit_tokens = 0;  // includes partial_reuse_tokens
  double prefix_hit_rate = 0.0;   // hit tokens / query tokens

  int64_t evictions = 0;             // cached blocks handed out again
  int64_t cow_copies = 0;            // copy-on-write block copies
  int64_t partial_reuse_copies = 0;  // block copies that reuse part of a cached block
  int64_t partial_reuse_tokens = 0;
  int64_t allocation_failures = 0;   // AllocateSlots calls answered "no room"
  int64_t dedup_blocks = 0;          // computed blocks swapped for an identical cached one
};

nlohmann::json KvStatsToJson(const KvStats& s);

}  // namespace kvserve
