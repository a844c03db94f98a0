// Splits text into pre-tokens before byte-level BPE merging, with a model family's
// sequence of regular expressions (PCRE2 in UTF + UCP mode, so \p{L}, \s, ... are Unicode).
//
// Each expression of the sequence splits every piece produced by the previous one; both
// the matches and the unmatched gaps between them become pieces (Hugging Face's Split
// "Isolated" behaviour, and llama.cpp's unicode_regex_split).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace kvserve {

class PreTokenizer {
 public:
  // The regex sequence for a pre-tokenizer name as GGUF's tokenizer.ggml.pre (or our
  // loaders) spell it: "gpt2"/"gpt-2", "llama3"/"llama-bpe", "qwen2", "smollm", "mpt",
  // "starcoder", "refact", "falcon", "deepseek-coder", "deepseek-llm", ...; "default" (or
  // "") is llama.cpp's fallback for BPE vocabularies that name none.
  // Unknown names are Unsupported (never silently mapped to another family's rules).
  static StatusOr<std::unique_ptr<PreTokenizer>> Create(std::string_view name);

  // An explicit regex sequence (for tokenizer.json files with a custom Split pattern).
  static StatusOr<std::unique_ptr<PreTokenizer>> FromPatterns(const std::vector<std::string>& patterns);

  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Appends the pieces of text, in order and covering all of it, to out. Invalid UTF-8 is
  // allowed: such bytes never match a pattern and end up in gap pieces. Thread-safe.
  void Split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  struct Regex;
  PreTokenizer() = default;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace kvserve
