#include "tokenizer/special_token_matcher.h"

#include "util/status.h"

namespace kvserve {

int32_t SpecialTokenMatcher::Child(int32_t node, uint8_t byte) const {
  auto it = edges_.find((static_cast<uint64_t>(node) << 8) | byte);
  return it == edges_.end() ? -1 : it->second;
}

void SpecialTokenMatcher::Add(std::string_view text, int32_t id, bool always) {
  KV_CHECK(!text.empty());
  first_byte_[static_cast<uint8_t>(text[0])] = true;
  int32_t node = 0;
  for (char c : text) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      nodes_.push_back(Node{});
      it = edges_.emplace(key, static_cast<int32_t>(nodes_.size() - 1)).first;
    }
    node = it->second;
  }
  // A text listed twice keeps its first id; "always" wins so user-defined tokens stay literal.
  if (nodes_[node].id < 0) nodes_[node].id = id;
  nodes_[node].always = nodes_[node].always || always;
}

void SpecialTokenMatcher::Split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  size_t raw_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[i])]) {
      ++i;
      continue;
    }
    int32_t node = 0;
    int32_t best_id = -1;
    size_t best_len = 0;
    for (size_t j = i; j < text.size(); ++j) {
      node = Child(node, static_cast<uint8_t>(text[j]));
      if (node < 0) break;
      const Node& n = nodes_[node];
      if (n.id >= 0 && (parse_special || n.always)) {
        best_id = n.id;
        best_len = j - i + 1;
      }
    }
    if (best_id < 0) {
      ++i;
      continue;
    }
    if (i > raw_start) out.push_back({text.substr(raw_start, i - raw_start), -1});
    out.push_back({text.substr(i, best_len), best_id});
    i += best_len;
    raw_start = i;
  }
  if (raw_start < text.size()) out.push_back({text.substr(raw_start), -1});
}

}  // namespace kvserve
