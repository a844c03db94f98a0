// Finds added and control tokens written literally in text, so that Encode can emit them
// as single ids and tokenize only the text between them.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvserve {

class SpecialTokenMatcher {
 public:
  // always: matched even when the caller does not ask to parse special tokens
  // (user-defined/added non-special tokens, as llama.cpp and Hugging Face do); otherwise
  // only with parse_special (control and unknown tokens such as "<s>", "<|eot_id|>").
  // REQUIRES: !text.empty().
  void Add(std::string_view text, int32_t id, bool always);

  bool empty() const { return nodes_.size() <= 1; }

  struct Fragment {
    std::string_view text;  // raw text to tokenize (id < 0), or the matched token text
    int32_t id = -1;
  };

  // Cuts text into raw-text fragments and matched tokens, leftmost-longest.
  void Split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

 private:
  struct Node {
    int32_t id = -1;
    bool always = false;
  };
  int32_t Child(int32_t node, uint8_t byte) const;

  std::vector<Node> nodes_{Node{}};                   // trie; node 0 is the root
  std::unordered_map<uint64_t, int32_t> edges_;       // (node << 8 | byte) -> child
  bool first_byte_[256] = {};                         // quick reject for the scan
};

}  // namespace kvserve
