// Text <-> token ids for a model's vocabulary (SentencePiece-style BPE or byte-level BPE),
// matching llama.cpp's tokenizers id for id.
//
// Encode: added/control tokens are cut out first (SpecialTokenMatcher), then each text
// fragment is tokenized:
//   SentencePiece (kSentencePiece): dummy-prefix space (when add_space_prefix) at the start
//     and after every special token, spaces -> U+2581, score-driven merges, <0xNN> byte
//     fallback (SpmEncoder);
//   byte-level BPE (kByteLevelBpe): the family's regex pre-tokenizer (PreTokenizer), GPT-2
//     byte map, rank-driven merges (BpeEncoder).
// Decode concatenates token bytes; for SentencePiece it drops the dummy-prefix space of the
// first text token (leading special tokens such as BOS do not count), so
// Decode(Encode(x, add_special, false), true) == x for any x. With parse_special, text that
// follows a special token mid-sequence gets llama.cpp's extra dummy-prefix space, which
// Decode keeps ("a<s>b" -> "a<s> b"); byte-level BPE round-trips exactly either way.
//
// A Tokenizer is immutable after Create; all methods are thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab_spec.h"
#include "tokenizer/byte_level_map.h"
#include "tokenizer/token_index.h"
#include "util/status.h"

namespace kvserve {

class BpeEncoder;
class PreTokenizer;
class SpecialTokenMatcher;
class SpmEncoder;

class Tokenizer {
 public:
  // Fails (InvalidArgument/Unsupported) on an inconsistent spec: sizes that disagree,
  // special ids out of range, an unknown pre-tokenizer, a vocabulary kind we cannot run.
  static StatusOr<std::unique_ptr<Tokenizer>> Create(const VocabSpec& spec);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // add_special: BOS first / EOS last as the vocabulary asks (spec.add_bos / add_eos).
  // parse_special: control tokens written in text ("<s>", "<|eot_id|>") become their ids;
  // without it they are tokenized as plain text. User-defined (added, non-special) tokens
  // are matched either way.
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // Concatenated token bytes (not necessarily valid UTF-8: a byte token may be half a
  // character). skip_special: control/unknown tokens produce nothing; otherwise their
  // literal text. Out-of-range ids produce nothing.
  std::string Decode(std::span<const int32_t> ids, bool skip_special) const;

  // One step of Decode. *at_text_start is Decode's state: set it to true for a new
  // sequence; the first text token turns it false (dropping its SentencePiece dummy-prefix
  // space); special tokens leave it unchanged.
  void DecodeToken(int32_t id, bool skip_special, bool* at_text_start, std::string& out) const;

  // Raw bytes of one token as it appears inside text: SentencePiece "▁" -> space, <0xNN>
  // -> that byte, byte-level pieces through the GPT-2 map, user-defined tokens verbatim;
  // empty for control/unknown/unused tokens and out-of-range ids.
  std::string TokenBytes(int32_t id) const;

  // The vocabulary's piece text for id (e.g. "▁the", "Ġthe", "<|eot_id|>"); REQUIRES: valid id.
  const std::string& TokenText(int32_t id) const;

  // Id of the piece with exactly this text (e.g. "<|eot_id|>", "</s>"), or -1.
  int32_t TokenToId(std::string_view piece) const { return FindToken(index_, piece); }

  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  bool add_bos() const { return add_bos_; }
  VocabSpec::Kind kind() const { return kind_; }
  bool IsEndOfGeneration(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }  // sorted, EOS included
  const std::string& chat_template() const { return chat_template_; }  // Jinja source, may be empty
  // Control, unknown or unused: tokens that are not text.
  bool IsSpecial(int32_t id) const;

 private:
  Tokenizer();
  void EncodeSpm(std::string_view text, bool parse_special, std::vector<int32_t>& out) const;
  void EncodeBpe(std::string_view text, bool parse_special, std::vector<int32_t>& out) const;

  VocabSpec::Kind kind_ = VocabSpec::Kind::kNone;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  TokenIndex index_;
  std::vector<int32_t> eog_ids_;  // sorted
  std::string chat_template_;
  int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // SentencePiece <0xNN> pieces, -1 if absent
  ByteLevelMap byte_map_;
  std::unique_ptr<SpecialTokenMatcher> specials_;
  std::unique_ptr<SpmEncoder> spm_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<BpeEncoder> bpe_;
};

}  // namespace kvserve
