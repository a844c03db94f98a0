// Everything a tokenizer needs, as read from a model file (GGUF metadata,
// tokenizer.json, or a SentencePiece tokenizer.model). The tokenizer module
// builds a Tokenizer from this; loaders only fill it in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvserve {

enum class TokenType : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct VocabSpec {
  enum class Kind { kNone, kSentencePiece, kByteLevelBpe };
  Kind kind = Kind::kNone;
  std::vector<std::string> tokens;  // id -> piece (SentencePiece uses U+2581 for space; byte-level uses GPT-2's byte map)
  std::vector<float> scores;        // SentencePiece scores (empty for BPE)
  std::vector<TokenType> types;     // per token
  std::vector<std::string> merges;  // byte-level BPE merges, "left right", rank order
  std::string pre_tokenizer;        // GGUF tokenizer.ggml.pre or derived from tokenizer.json: "llama3", "qwen2", "smollm", "gpt2", "default", ...
  int bos_id = -1;
  int eos_id = -1;
  std::vector<int> eog_ids;         // all end-of-generation ids (eos, <|eot_id|>, <|im_end|>, ...)
  int unk_id = -1;
  int pad_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;     // SentencePiece dummy prefix
  std::string chat_template;        // Jinja source, if the file carries one
};

}  // namespace kvserve
