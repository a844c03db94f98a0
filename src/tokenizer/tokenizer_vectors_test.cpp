// Conformance with llama.cpp's tokenizer test vectors (shared/tokenizers/vectors): every
// one of the 46 strings must encode to exactly the recorded ids (no BOS/EOS, special-token
// text not parsed).
#include <gtest/gtest.h>

#include "tokenizer/test_fixtures.h"

namespace kvserve {
namespace {

using testing::LoadJson;
using testing::LoadSp;
using testing::ReadVectors;

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

void ExpectVectors(const Tokenizer* tok, const std::string& family) {
  ASSERT_NE(tok, nullptr);
  const auto cases = ReadVectors(family);
  ASSERT_FALSE(cases.empty());
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto got = tok->Encode(cases[i].text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(got, cases[i].ids) << family << " case " << i + 1 << ": \"" << Printable(cases[i].text) << "\"";
    failures += got != cases[i].ids;
  }
  EXPECT_EQ(failures, 0) << family;
}

TEST(TokenizerVectors, LlamaSpmWithLlama2TokenizerModel) {
  auto tok = LoadSp("tokenizers/llama2-sp/tokenizer.model");
  ExpectVectors(tok.get(), "llama-spm");
}

TEST(TokenizerVectors, Phi3WithLlama2TokenizerModel) {
  // phi-3's .out equals llama-spm's (same base SentencePiece vocabulary).
  auto tok = LoadSp("tokenizers/llama2-sp/tokenizer.model");
  ExpectVectors(tok.get(), "phi-3");
}

TEST(TokenizerVectors, LlamaBpeWithLlama3TokenizerJson) {
  auto tok = LoadJson("tokenizers/llama3/tokenizer.json");
  ExpectVectors(tok.get(), "llama-bpe");
}

TEST(TokenizerVectors, Qwen2WithQwen3TokenizerJson) {
  auto tok = LoadJson("tokenizers/qwen3/tokenizer.json");
  ExpectVectors(tok.get(), "qwen2");
}

TEST(TokenizerVectors, DeepseekR1QwenWithQwen3TokenizerJson) {
  auto tok = LoadJson("tokenizers/qwen3/tokenizer.json");
  ExpectVectors(tok.get(), "deepseek-r1-qwen");
}

}  // namespace
}  // namespace kvserve
