#include "tokenizer/spm_encoder.h"

#include <algorithm>
#include <queue>

#include "tokenizer/utf8.h"

namespace kvserve {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t off;
  uint32_t n;  // 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t size;  // byte length of the pair when it was queued; stale entries differ
};

struct BigramLess {
  // Highest score first; among equal scores the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void SpmEncoder::Encode(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    // One symbol per character. An ill-formed byte is a symbol of its own (llama.cpp would
    // let a stray lead byte swallow the next bytes, even half of an escaped space, so the
    // text would not survive a round trip); for valid UTF-8 the two agree.
    const size_t valid = ValidUtf8Len(text, off);
    const size_t n = valid > 0 ? valid : 1;
    const int32_t idx = static_cast<int32_t>(symbols.size());
    symbols.push_back({idx - 1, off + n == text.size() ? -1 : idx + 1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(n)});
    off += n;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t size = symbols[left].n + symbols[right].n;
    const int32_t id = FindToken(*index_, text.substr(symbols[left].off, size));
    if (id < 0) return;
    queue.push({(*scores_)[id], left, right, size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // an endpoint changed since queued
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.off, s.n);
    const int32_t id = FindToken(*index_, piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const int32_t bid = byte_ids_[static_cast<uint8_t>(c)];
      if (bid >= 0) out.push_back(bid);
      else if (unk_id_ >= 0) out.push_back(unk_id_);
    }
  }
}

}  // namespace kvserve
