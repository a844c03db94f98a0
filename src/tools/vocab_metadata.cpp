#include "tools/vocab_metadata.h"

#include <fmt/format.h>

namespace kvserve {

Status PadVocab(VocabSpec& spec, int vocab_size) {
  const int n = static_cast<int>(spec.tokens.size());
  if (n > vocab_size)
    return Status::InvalidArgument(fmt::format("the tokenizer has {} tokens, more than the model's vocabulary of {}", n, vocab_size));
  const bool with_scores = !spec.scores.empty();
  for (int id = n; id < vocab_size; ++id) {
    spec.tokens.push_back(fmt::format("[PAD{}]", id));
    spec.types.push_back(TokenType::kUnused);
    if (with_scores) spec.scores.push_back(-1000.0f);
  }
  return Status::Ok();
}

std::string GgufPreTokenizerName(const std::string& pre) {
  if (pre == "llama3") return "llama-bpe";
  if (pre == "gpt2") return "gpt-2";
  return pre;
}

Status WriteVocabMetadata(const VocabSpec& spec, GgufWriter& w) {
  const size_t n = spec.tokens.size();
  if (spec.kind == VocabSpec::Kind::kNone || n == 0) return Status::Unsupported("vocabulary is empty: nothing to write as tokenizer.ggml.*");
  if (spec.types.size() != n || (!spec.scores.empty() && spec.scores.size() != n))
    return Status::InvalidArgument(fmt::format("vocabulary has {} tokens but {} types and {} scores", n, spec.types.size(), spec.scores.size()));
  const bool spm = spec.kind == VocabSpec::Kind::kSentencePiece;
  w.SetString("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  w.SetString("tokenizer.ggml.pre", spm ? "default" : GgufPreTokenizerName(spec.pre_tokenizer));
  w.SetStringArray("tokenizer.ggml.tokens", spec.tokens);
  if (spm) w.SetFloatArray("tokenizer.ggml.scores", spec.scores.empty() ? std::vector<float>(n, 0.0f) : spec.scores);
  std::vector<int64_t> types(n);
  for (size_t i = 0; i < n; ++i) types[i] = static_cast<int64_t>(spec.types[i]);
  w.SetIntArray("tokenizer.ggml.token_type", GgufType::kInt32, types);
  if (!spm) w.SetStringArray("tokenizer.ggml.merges", spec.merges);
  const auto id = [&](const char* key, int v) {
    if (v >= 0) w.SetUint32(key, static_cast<uint32_t>(v));
  };
  id("tokenizer.ggml.bos_token_id", spec.bos_id);
  id("tokenizer.ggml.eos_token_id", spec.eos_id);
  id("tokenizer.ggml.unknown_token_id", spec.unk_id);
  id("tokenizer.ggml.padding_token_id", spec.pad_id);
  w.SetBool("tokenizer.ggml.add_bos_token", spec.add_bos);
  w.SetBool("tokenizer.ggml.add_eos_token", spec.add_eos);
  if (spm) w.SetBool("tokenizer.ggml.add_space_prefix", spec.add_space_prefix);
  if (!spec.chat_template.empty()) w.SetString("tokenizer.chat_template", spec.chat_template);
  return Status::Ok();
}

}  // namespace kvserve
