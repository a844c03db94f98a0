#include "kv/prefix_tree.h"

#include <algorithm>

#include <fmt/format.h>

namespace kvserve {
namespace {

PrefixTreeNode BuildNode(const BlockPool& pool, int32_t first, int32_t* num_nodes) {
  PrefixTreeNode node;
  node.extra_key = pool.extra_key(first);
  ++*num_nodes;
  int32_t b = first;
  std::vector<int32_t> children;
  while (true) {
    node.blocks.push_back(b);
    node.ref_counts.push_back(pool.ref_count(b));
    auto toks = pool.tokens(b);
    node.tokens.insert(node.tokens.end(), toks.begin(), toks.end());
    children = pool.CachedChildren(pool.hash(b));
    if (children.size() != 1) break;
    b = children[0];
  }
  for (int32_t c : children) node.children.push_back(BuildNode(pool, c, num_nodes));
  return node;
}

std::string BlockList(const std::vector<int32_t>& blocks) {
  std::string out;
  size_t i = 0;
  while (i < blocks.size()) {
    size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? fmt::format("{}", blocks[i]) : fmt::format("{}-{}", blocks[i], blocks[j]);
    i = j + 1;
  }
  return out;
}

void AppendText(const PrefixTreeNode& n, const std::string& prefix, bool last, int max_tokens, std::string* out) {
  auto [lo, hi] = std::minmax_element(n.ref_counts.begin(), n.ref_counts.end());
  std::string refs = *lo == *hi ? fmt::format("{}", *lo) : fmt::format("{}..{}", *lo, *hi);
  std::string toks;
  int shown = std::min<int>(max_tokens, static_cast<int>(n.tokens.size()));
  for (int i = 0; i < shown; ++i) toks += fmt::format("{}{}", i ? " " : "", n.tokens[i]);
  if (shown < static_cast<int>(n.tokens.size())) toks += " ...";
  *out += fmt::format("{}{}{} block{} ({} tokens) ids {} ref {}{} [{}]\n", prefix, last ? "`-- " : "|-- ",
                      n.blocks.size(), n.blocks.size() == 1 ? "" : "s", n.tokens.size(), BlockList(n.blocks), refs,
                      n.extra_key ? fmt::format(" salt {}", n.extra_key) : "", toks);
  std::string child_prefix = prefix + (last ? "    " : "|   ");
  for (size_t i = 0; i < n.children.size(); ++i) {
    AppendText(n.children[i], child_prefix, i + 1 == n.children.size(), max_tokens, out);
  }
}

nlohmann::json NodeJson(const PrefixTreeNode& n) {
  nlohmann::json children = nlohmann::json::array();
  for (const auto& c : n.children) children.push_back(NodeJson(c));
  return nlohmann::json{{"num_blocks", n.blocks.size()}, {"num_tokens", n.tokens.size()},
                        {"blocks", n.blocks},           {"ref_counts", n.ref_counts},
                        {"extra_key", n.extra_key},     {"tokens", n.tokens},
                        {"children", std::move(children)}};
}

}  // namespace

PrefixTree BuildPrefixTree(const KvCacheManager& manager) {
  const BlockPool& pool = manager.pool();
  PrefixTree tree;
  tree.block_size = pool.block_size();
  tree.num_cached_blocks = pool.num_cached();
  for (int32_t b : pool.CachedChildren(manager.hasher().root())) {
    tree.roots.push_back(BuildNode(pool, b, &tree.num_nodes));
  }
  for (int32_t b = 0; b < pool.num_blocks(); ++b) {
    if (pool.is_cached(b) && pool.parent_hash(b) != manager.hasher().root() && !pool.HasHash(pool.parent_hash(b))) {
      tree.orphans.push_back(BuildNode(pool, b, &tree.num_nodes));
    }
  }
  return tree;
}

std::string PrefixTreeToText(const PrefixTree& tree, int max_tokens) {
  std::string out = fmt::format("prefix cache: {} cached blocks of {} tokens, {} nodes\n", tree.num_cached_blocks,
                                tree.block_size, tree.num_nodes);
  out += "root\n";
  for (size_t i = 0; i < tree.roots.size(); ++i) {
    AppendText(tree.roots[i], "", i + 1 == tree.roots.size(), max_tokens, &out);
  }
  if (!tree.orphans.empty()) {
    out += "orphans (parent evicted; unreachable by lookups until it is cached again)\n";
    for (size_t i = 0; i < tree.orphans.size(); ++i) {
      AppendText(tree.orphans[i], "", i + 1 == tree.orphans.size(), max_tokens, &out);
    }
  }
  return out;
}

nlohmann::json PrefixTreeToJson(const PrefixTree& tree) {
  nlohmann::json roots = nlohmann::json::array();
  for (const auto& n : tree.roots) roots.push_back(NodeJson(n));
  nlohmann::json orphans = nlohmann::json::array();
  for (const auto& n : tree.orphans) orphans.push_back(NodeJson(n));
  return nlohmann::json{{"block_size", tree.block_size},
                        {"num_cached_blocks", tree.num_cached_blocks},
                        {"num_nodes", tree.num_nodes},
                        {"roots", std::move(roots)},
                        {"orphans", std::move(orphans)}};
}

}  // namespace kvserve
