// Streaming detokenization for generated tokens: each Push returns only text that is
// complete UTF-8, holding back a character split across byte tokens until its last byte
// arrives. The concatenation of every Push plus Finish equals
// SanitizeUtf8(tokenizer.Decode(all ids, skip_special)).
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace kvserve {

class IncrementalDetokenizer {
 public:
  struct Options {
    bool skip_special = true;
    // true: the ids are a whole sequence, decoded like Decode (SentencePiece's dummy-prefix
    // space of the first text token is dropped). false: the ids continue text already shown
    // (a prompt), so every token keeps its leading space.
    bool sequence_start = true;
  };

  // REQUIRES: tokenizer outlives this object.
  IncrementalDetokenizer(const Tokenizer* tokenizer, Options options);

  // Text completed by this token (possibly empty).
  std::string Push(int32_t id);

  // Whatever is held back; an unfinished character becomes U+FFFD. The detokenizer may be
  // reused afterwards as if freshly constructed with the same options.
  std::string Finish();

  // Bytes held back waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  Options options_;
  bool at_text_start_;
  std::string pending_;
};

}  // namespace kvserve
