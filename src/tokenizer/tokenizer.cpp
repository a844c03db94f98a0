#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/bpe_encoder.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/special_token_matcher.h"
#include "tokenizer/spm_encoder.h"

namespace kvserve {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// "<0xNN>" -> NN, or -1.
int ParseByteToken(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return -1;
  }
  return v;
}

void AppendUnescapedSpm(std::string_view piece, std::string& out) {
  size_t pos = 0;
  for (size_t hit = piece.find(kSpmSpace); hit != std::string_view::npos; hit = piece.find(kSpmSpace, pos)) {
    out.append(piece.substr(pos, hit - pos));
    out.push_back(' ');
    pos = hit + kSpmSpace.size();
  }
  out.append(piece.substr(pos));
}

Status CheckId(int id, size_t n, const char* what) {
  if (id < -1 || id >= static_cast<int64_t>(n)) {
    return Status::InvalidArgument(std::string("vocabulary ") + what + " id " + std::to_string(id) +
                                   " is outside [0, " + std::to_string(n) + ")");
  }
  return Status::Ok();
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(const VocabSpec& spec) {
  const size_t n = spec.tokens.size();
  if (spec.kind == VocabSpec::Kind::kNone) return Status::Unsupported("vocabulary has no tokenizer model");
  if (n == 0) return Status::InvalidArgument("vocabulary has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return Status::InvalidArgument("vocabulary is too large");
  if (!spec.types.empty() && spec.types.size() != n) {
    return Status::InvalidArgument("vocabulary has " + std::to_string(n) + " tokens but " +
                                   std::to_string(spec.types.size()) + " token types");
  }
  if (spec.kind == VocabSpec::Kind::kSentencePiece && spec.scores.size() != n) {
    return Status::InvalidArgument("SentencePiece vocabulary has " + std::to_string(n) + " tokens but " +
                                   std::to_string(spec.scores.size()) + " scores");
  }
  KV_RETURN_IF_ERROR(CheckId(spec.bos_id, n, "BOS"));
  KV_RETURN_IF_ERROR(CheckId(spec.eos_id, n, "EOS"));
  KV_RETURN_IF_ERROR(CheckId(spec.unk_id, n, "UNK"));
  KV_RETURN_IF_ERROR(CheckId(spec.pad_id, n, "PAD"));
  for (int id : spec.eog_ids) KV_RETURN_IF_ERROR(CheckId(id, n, "end-of-generation"));

  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->kind_ = spec.kind;
  t->tokens_ = spec.tokens;
  t->types_ = spec.types.empty() ? std::vector<TokenType>(n, TokenType::kNormal) : spec.types;
  if (spec.kind == VocabSpec::Kind::kSentencePiece) t->scores_ = spec.scores;
  t->bos_id_ = spec.bos_id;
  t->eos_id_ = spec.eos_id;
  t->unk_id_ = spec.unk_id;
  t->add_bos_ = spec.add_bos && spec.bos_id >= 0;
  t->add_eos_ = spec.add_eos && spec.eos_id >= 0;
  t->add_space_prefix_ = spec.add_space_prefix;
  t->chat_template_ = spec.chat_template;
  for (int id : spec.eog_ids) {
    if (id >= 0) t->eog_ids_.push_back(id);
  }
  if (spec.eos_id >= 0) t->eog_ids_.push_back(spec.eos_id);
  std::sort(t->eog_ids_.begin(), t->eog_ids_.end());
  t->eog_ids_.erase(std::unique(t->eog_ids_.begin(), t->eog_ids_.end()), t->eog_ids_.end());

  // A piece listed twice maps to its last id, as in llama.cpp.
  t->index_.reserve(n);
  for (size_t i = 0; i < n; ++i) t->index_[t->tokens_[i]] = static_cast<int32_t>(i);

  t->specials_ = std::make_unique<SpecialTokenMatcher>();
  for (size_t i = 0; i < n; ++i) {
    const TokenType ty = t->types_[i];
    if (t->tokens_[i].empty()) continue;
    if (ty == TokenType::kUserDefined) {
      t->specials_->Add(t->tokens_[i], static_cast<int32_t>(i), /*always=*/true);
    } else if (ty == TokenType::kControl || ty == TokenType::kUnknown) {
      t->specials_->Add(t->tokens_[i], static_cast<int32_t>(i), /*always=*/false);
    }
  }

  if (spec.kind == VocabSpec::Kind::kSentencePiece) {
    t->byte_ids_.fill(-1);
    for (size_t i = 0; i < n; ++i) {
      const int b = ParseByteToken(t->tokens_[i]);
      if (b >= 0 && t->byte_ids_[b] < 0) t->byte_ids_[b] = static_cast<int32_t>(i);
    }
    t->spm_ = std::make_unique<SpmEncoder>(&t->index_, &t->scores_, t->byte_ids_, t->unk_id_);
  } else {
    KV_ASSIGN_OR_RETURN(t->pre_, PreTokenizer::Create(spec.pre_tokenizer));
    KV_ASSIGN_OR_RETURN(t->bpe_, BpeEncoder::Create(spec.merges, &t->index_));
    // llama.cpp (and Llama 3's tokenizer.json, ignore_merges) emit a pre-token that is
    // itself a piece without merging.
    t->ignore_merges_ = spec.pre_tokenizer == "llama3" || spec.pre_tokenizer == "llama-bpe" ||
                        spec.pre_tokenizer == "llama-v3" || spec.pre_tokenizer == "falcon3";
  }
  return t;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_) out.push_back(bos_id_);
  if (kind_ == VocabSpec::Kind::kSentencePiece) {
    EncodeSpm(text, parse_special, out);
  } else {
    EncodeBpe(text, parse_special, out);
  }
  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

void Tokenizer::EncodeSpm(std::string_view text, bool parse_special, std::vector<int32_t>& out) const {
  std::vector<SpecialTokenMatcher::Fragment> frags;
  specials_->Split(text, parse_special, frags);
  // llama.cpp adds the dummy prefix at the start and after every special token.
  bool prev_special = true;
  std::string escaped;
  for (const auto& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      prev_special = true;
      continue;
    }
    escaped.clear();
    if (add_space_prefix_ && prev_special) escaped.append(kSpmSpace);
    for (char c : f.text) {
      if (c == ' ') escaped.append(kSpmSpace);
      else escaped.push_back(c);
    }
    spm_->Encode(escaped, out);
    prev_special = false;
  }
}

void Tokenizer::EncodeBpe(std::string_view text, bool parse_special, std::vector<int32_t>& out) const {
  std::vector<SpecialTokenMatcher::Fragment> frags;
  specials_->Split(text, parse_special, frags);
  std::vector<std::string_view> words;
  std::string mapped;
  for (const auto& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      continue;
    }
    words.clear();
    pre_->Split(f.text, words);
    for (std::string_view w : words) {
      mapped.clear();
      byte_map_.Encode(w, mapped);
      bpe_->EncodeWord(mapped, ignore_merges_, out);
    }
  }
}

bool Tokenizer::IsSpecial(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return false;
  const TokenType t = types_[id];
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUnused;
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

const std::string& Tokenizer::TokenText(int32_t id) const {
  KV_CHECK(id >= 0 && id < vocab_size());
  return tokens_[id];
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  std::string out;
  if (id < 0 || id >= vocab_size() || IsSpecial(id)) return out;
  const std::string& piece = tokens_[id];
  const TokenType t = types_[id];
  if (t == TokenType::kUserDefined) return piece;
  if (kind_ == VocabSpec::Kind::kSentencePiece) {
    if (t == TokenType::kByte) {
      const int b = ParseByteToken(piece);
      if (b >= 0) return std::string(1, static_cast<char>(b));
    }
    AppendUnescapedSpm(piece, out);
  } else {
    byte_map_.Decode(piece, out);
  }
  return out;
}

void Tokenizer::DecodeToken(int32_t id, bool skip_special, bool* at_text_start, std::string& out) const {
  if (id < 0 || id >= vocab_size()) return;
  if (IsSpecial(id)) {
    // Special tokens leave the start-of-text state alone: a leading BOS does not keep the
    // first word's dummy-prefix space, and text after a special token mid-sequence keeps
    // its space, as llama.cpp shows generated text (" Once" after a generated BOS).
    if (!skip_special) out.append(tokens_[id]);
    return;
  }
  const bool first = *at_text_start;
  *at_text_start = false;
  std::string bytes = TokenBytes(id);
  if (first && kind_ == VocabSpec::Kind::kSentencePiece && add_space_prefix_ && types_[id] == TokenType::kNormal &&
      !bytes.empty() && bytes[0] == ' ') {
    out.append(bytes, 1, std::string::npos);
    return;
  }
  out.append(bytes);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) DecodeToken(id, skip_special, &at_start, out);
  return out;
}

}  // namespace kvserve
