// SentencePiece-style BPE as llama.cpp's SPM tokenizer runs it: start from UTF-8
// characters, repeatedly merge the adjacent pair whose concatenation is the vocabulary
// piece with the highest score (ties: leftmost), then spell any character that never
// became a piece with <0xNN> byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/token_index.h"

namespace kvserve {

class SpmEncoder {
 public:
  // byte_ids[b]: id of the "<0xNN>" piece for byte b, or -1 (then unk_id, if any, is used).
  // REQUIRES: index and scores outlive the encoder; scores has an entry for every id in index.
  SpmEncoder(const TokenIndex* index, const std::vector<float>* scores, const std::array<int32_t, 256>& byte_ids,
             int32_t unk_id)
      : index_(index), scores_(scores), byte_ids_(byte_ids), unk_id_(unk_id) {}

  // text: already normalized (spaces as U+2581, dummy prefix added by the caller).
  void Encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  const TokenIndex* index_;
  const std::vector<float>* scores_;
  std::array<int32_t, 256> byte_ids_;
  int32_t unk_id_;
};

}  // namespace kvserve
