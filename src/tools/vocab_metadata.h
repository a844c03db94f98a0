// A VocabSpec as GGUF tokenizer.ggml.* metadata, the way llama.cpp's converter
// writes it: "llama" (SentencePiece: tokens, scores, token_type) or "gpt2"
// (byte-level BPE: tokens, token_type, merges, pre), special ids and flags.
#pragma once

#include "model/gguf_writer.h"
#include "model/vocab_spec.h"
#include "util/status.h"

namespace kvserve {

// Pads the token list to `vocab_size` with "[PAD<id>]" tokens of type kUnused (score
// -1000 for SentencePiece), as llama.cpp's converter does when a model's embedding
// has more rows than its tokenizer has tokens. Error if the tokenizer is already larger.
Status PadVocab(VocabSpec& spec, int vocab_size);

// GGUF's name for a VocabSpec pre-tokenizer ("llama3" -> "llama-bpe", "gpt2" -> "gpt-2").
std::string GgufPreTokenizerName(const std::string& pre);

// Error (Unsupported) for a spec of kind kNone.
Status WriteVocabMetadata(const VocabSpec& spec, GgufWriter& w);

}  // namespace kvserve
