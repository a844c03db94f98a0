#include "tokenizer/incremental_detokenizer.h"

#include "tokenizer/utf8.h"

namespace kvserve {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer* tokenizer, Options options)
    : tokenizer_(tokenizer), options_(options), at_text_start_(options.sequence_start) {
  KV_CHECK(tokenizer_ != nullptr);
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  tokenizer_->DecodeToken(id, options_.skip_special, &at_text_start_, pending_);
  // Everything before a trailing, still-completable prefix is final: no later byte can
  // change how SanitizeUtf8 reads it.
  const size_t hold = IncompleteUtf8Tail(pending_);
  const size_t ready = pending_.size() - hold;
  if (ready == 0) return std::string();
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string IncrementalDetokenizer::Finish() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  at_text_start_ = options_.sequence_start;
  return out;
}

}  // namespace kvserve
