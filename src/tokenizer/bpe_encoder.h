// Rank-ordered BPE merges (GPT-2 style) over one pre-token: repeatedly merge the adjacent
// pair with the lowest merge rank (ties: leftmost) until no listed merge applies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/token_index.h"
#include "util/status.h"

namespace kvserve {

class BpeEncoder {
 public:
  // merges: "left right" in rank order. A merge is usable when left, right and left+right
  // are all vocabulary pieces; others are skipped (they could never fire on token ids).
  // REQUIRES: index outlives the encoder.
  static StatusOr<std::unique_ptr<BpeEncoder>> Create(const std::vector<std::string>& merges,
                                                      const TokenIndex* index);

  // word: one pre-token in the vocabulary's spelling (byte-level mapped). ignore_merges:
  // a word that is itself a piece is emitted whole (Llama 3's tokenizer.json setting).
  void EncodeWord(std::string_view word, bool ignore_merges, std::vector<int32_t>& out) const;

  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  explicit BpeEncoder(const TokenIndex* index) : index_(index) {}
  const Merge* FindMerge(int32_t left, int32_t right) const;

  const TokenIndex* index_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id)
};

}  // namespace kvserve
