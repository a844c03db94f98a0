#include "kv/kv_stats.h"

namespace kvserve {

nlohmann::json KvStatsToJson(const KvStats& s) {
  return nlohmann::json{
      {"num_blocks", s.num_blocks},
      {"block_size", s.block_size},
      {"bytes_per_block", s.bytes_per_block},
      {"num_requests", s.num_requests},
      {"used_blocks", s.used_blocks},
      {"free_blocks", s.free_blocks},
      {"cached_blocks", s.cached_blocks},
      {"cached_free_blocks", s.cached_free_blocks},
      {"peak_used_blocks", s.peak_used_blocks},
      {"allocated_slots", s.allocated_slots},
      {"filled_slots", s.filled_slots},
      {"internal_fragmentation", s.internal_fragmentation},
      {"prefix_queries", s.prefix_queries},
      {"prefix_query_tokens", s.prefix_query_tokens},
      {"prefix_hit_tokens", s.prefix_hit_tokens},
      {"prefix_hit_rate", s.prefix_hit_rate},
      {"evictions", s.evictions},
      {"cow_copies", s.cow_copies},
      {"partial_reuse_copies", s.partial_reuse_copies},
      {"partial_reuse_tokens", s.partial_reuse_tokens},
      {"allocation_failures", s.allocation_failures},
      {"dedup_blocks", s.dedup_blocks},
  };
}

}  // namespace kvserve
