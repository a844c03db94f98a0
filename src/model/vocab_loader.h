// Reading tokenizer vocabularies from model files into a VocabSpec.
// Lives in the model module because LoadModel needs it; the tokenizer module
// builds Tokenizers from the resulting VocabSpec.
#pragma once

#include <string>

#include "model/vocab_spec.h"
#include "util/status.h"

namespace kvserve {

class GgufFile;

// From GGUF metadata (tokenizer.ggml.model/tokens/scores/token_type/merges/pre,
// bos/eos/unk/pad ids, add_bos_token, add_space_prefix, tokenizer.chat_template).
StatusOr<VocabSpec> LoadVocabFromGguf(const GgufFile& gguf);

// From a Hugging Face directory: tokenizer.json (BPE, byte-level or SentencePiece-style),
// or a SentencePiece tokenizer.model (protobuf), plus tokenizer_config.json
// (chat_template, add_bos_token, bos/eos tokens) and generation_config.json / config.json ids.
StatusOr<VocabSpec> LoadVocabFromHfDir(const std::string& dir);

// From a single tokenizer.json (+ optional tokenizer_config.json beside it).
StatusOr<VocabSpec> LoadVocabFromTokenizerJson(const std::string& tokenizer_json_path);

// From a SentencePiece tokenizer.model file.
StatusOr<VocabSpec> LoadVocabFromSentencePieceModel(const std::string& path);

}  // namespace kvserve
