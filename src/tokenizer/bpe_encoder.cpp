#include "tokenizer/bpe_encoder.h"

#include <algorithm>
#include <queue>

#include "tokenizer/utf8.h"

namespace kvserve {
namespace {

uint64_t PairKey(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t off;
  uint32_t n;   // 0 once merged into its left neighbour
  int32_t id;   // piece id, or -1 for a character that is not a piece
};

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t left_id;   // ids when queued; a stale entry no longer matches
  int32_t right_id;
};

struct BigramGreater {
  // Lowest rank first; among equal ranks the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

StatusOr<std::unique_ptr<BpeEncoder>> BpeEncoder::Create(const std::vector<std::string>& merges,
                                                         const TokenIndex* index) {
  std::unique_ptr<BpeEncoder> enc(new BpeEncoder(index));
  enc->merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    // Pieces may themselves contain spaces in some vocabularies: take the first split
    // point whose two sides and concatenation are all pieces.
    bool found = false;
    for (size_t sp = m.find(' '); sp != std::string::npos && !found; sp = m.find(' ', sp + 1)) {
      const std::string_view l(m.data(), sp), r(m.data() + sp + 1, m.size() - sp - 1);
      const int32_t lid = FindToken(*index, l), rid = FindToken(*index, r);
      if (lid < 0 || rid < 0) continue;
      joined.assign(l);
      joined.append(r);
      const int32_t res = FindToken(*index, joined);
      if (res < 0) continue;
      found = true;
      // The first (lowest-rank) occurrence of a pair wins.
      enc->merges_.emplace(PairKey(lid, rid), Merge{static_cast<int32_t>(rank), res});
    }
    if (m.find(' ') == std::string::npos) {
      return Status::Corrupt("BPE merge #" + std::to_string(rank) + " '" + m + "' has no space separator");
    }
  }
  if (enc->merges_.empty() && !merges.empty()) {
    return Status::Corrupt("none of the " + std::to_string(merges.size()) + " BPE merges names vocabulary pieces");
  }
  return enc;
}

const BpeEncoder::Merge* BpeEncoder::FindMerge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeEncoder::EncodeWord(std::string_view word, bool ignore_merges, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    const int32_t id = FindToken(*index_, word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t n = std::min(Utf8LeadLen(static_cast<uint8_t>(word[off])), word.size() - off);
    const int32_t idx = static_cast<int32_t>(symbols.size());
    symbols.push_back({idx - 1, off + n == word.size() ? -1 : idx + 1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(n), FindToken(*index_, word.substr(off, n))});
    off += n;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramGreater> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Merge* m = FindMerge(symbols[left].id, symbols[right].id);
    if (m == nullptr) return;
    queue.push({m->rank, left, right, symbols[left].id, symbols[right].id});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    // Both alive with unchanged pieces implies still adjacent: symbols only grow rightward.
    if (l.n == 0 || r.n == 0 || l.id != b.left_id || r.id != b.right_id) continue;
    l.id = FindMerge(l.id, r.id)->result;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    // A character outside the vocabulary: fall back to single-byte pieces where they exist.
    for (uint32_t k = 0; k < s.n; ++k) {
      const int32_t id = FindToken(*index_, word.substr(s.off + k, 1));
      if (id >= 0) out.push_back(id);
    }
  }
}

}  // namespace kvserve
