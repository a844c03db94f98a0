// A radix-tree view of the prefix cache, for inspection and debugging
// (`kvserve kv-sim --dump-prefix-tree`). Built on demand from the block pool;
// chains of cached blocks with a single child are merged into one node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/kv_cache_manager.h"

namespace kvserve {

struct PrefixTreeNode {
  std::vector<int32_t> blocks;      // cached blocks of this node, in token order
  std::vector<int32_t> ref_counts;  // per block; 0 = free but still cached (evictable)
  std::vector<int32_t> tokens;      // blocks.size() * block_size token ids
  uint64_t extra_key = 0;           // cache salt the chain was cached under
  std::vector<PrefixTreeNode> children;
};

struct PrefixTree {
  int32_t block_size = 0;
  int32_t num_cached_blocks = 0;
  int32_t num_nodes = 0;
  std::vector<PrefixTreeNode> roots;    // chains starting at the first block of a sequence
  std::vector<PrefixTreeNode> orphans;  // chains whose parent block was evicted (unreachable by lookups)
};

PrefixTree BuildPrefixTree(const KvCacheManager& manager);

// One line per node, indented by depth; shows up to `max_tokens` token ids per node.
std::string PrefixTreeToText(const PrefixTree& tree, int max_tokens = 8);
// Every node with all its token ids.
nlohmann::json PrefixTreeToJson(const PrefixTree& tree);

}  // namespace kvserve
