// Conformance with llama.cpp's tokenizer test vectors (shared/tokenizers/vectors): every
// one of the 46 strings must encode to exactly the recorded ids (no BOS/EOS, special-token
// text not parsed).
//
// Covered: every family with a vocabulary here. From the vocab GGUFs: llama-spm, phi-3
// (SentencePiece), gpt-2, mpt, falcon, starcoder, refact, deepseek-coder, deepseek-llm
// (byte-level BPE, each with its own pre-tokenizer regexes). From tokenizer files:
// llama-spm/phi-3 via Llama 2's tokenizer.model, llama-bpe via Llama 3's tokenizer.json,
// qwen2 and deepseek-r1-qwen via Qwen3's tokenizer.json. Not covered: bert-bge, a WordPiece
// (encoder-only embedding) vocabulary that the engine does not serve; loading it must fail
// with Unsupported.
#include <gtest/gtest.h>

#include "tokenizer/test_fixtures.h"

namespace kvserve {
namespace {

using testing::LoadGguf;
using testing::LoadGgufSpec;
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
    // And back: the ids decode to the original text.
    EXPECT_EQ(tok->Decode(cases[i].ids, false), cases[i].text) << family << " case " << i + 1;
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

class GgufVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufVectors, MatchLlamaCppIds) {
  const std::string family = GetParam();
  auto tok = LoadGguf("tokenizers/vectors/ggml-vocab-" + family + ".gguf");
  ExpectVectors(tok.get(), family);
}

INSTANTIATE_TEST_SUITE_P(Families, GgufVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "mpt", "falcon", "starcoder", "refact",
                                           "deepseek-coder", "deepseek-llm"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(TokenizerVectors, BertWordPieceIsRejected) {
  auto spec = LoadGgufSpec("tokenizers/vectors/ggml-vocab-bert-bge.gguf");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), Status::Code::kUnsupported) << spec.status().ToString();
  EXPECT_NE(spec.status().message().find("ggml-vocab-bert-bge.gguf"), std::string::npos);
}

TEST(TokenizerVectors, GgufAndTokenizerModelAgree) {
  // The llama-spm GGUF and Llama 2's tokenizer.model are the same vocabulary.
  auto gguf = LoadGguf("tokenizers/vectors/ggml-vocab-llama-spm.gguf");
  auto sp = LoadSp("tokenizers/llama2-sp/tokenizer.model");
  ASSERT_NE(gguf, nullptr);
  ASSERT_NE(sp, nullptr);
  EXPECT_EQ(gguf->vocab_size(), sp->vocab_size());
  const std::string text = testing::ReadFixture("golden/prose-25m/eval.txt").substr(0, 20000);
  EXPECT_EQ(gguf->Encode(text, true, true), sp->Encode(text, true, true));
}

}  // namespace
}  // namespace kvserve
