// Prompt tokenization against reference outputs: llama.cpp on stories260K (BOS added,
// special-token text parsed) and Hugging Face transformers on prose-25m (Llama 2 tokenizer).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/test_fixtures.h"

namespace kvserve {
namespace {

using nlohmann::json;
using testing::LoadGguf;
using testing::LoadHfDir;
using testing::LoadSp;
using testing::ReadFixture;

const char* kStoriesPrompts[] = {"once_upon_a_time", "lily_and_tom",      "single_space",
                                 "bos_literal",      "empty",             "hello",
                                 "dialogue_newline", "byte_fallback_unicode", "long_300_tokens"};

void ExpectStoriesGolden(const Tokenizer* tok) {
  ASSERT_NE(tok, nullptr);
  for (const char* name : kStoriesPrompts) {
    const json g = json::parse(ReadFixture(std::string("golden/stories260K/") + name + ".json"));
    const std::string prompt = g.at("prompt").get<std::string>();
    const auto want = g.at("prompt_tokens").get<std::vector<int32_t>>();
    EXPECT_EQ(tok->Encode(prompt, /*add_special=*/true, /*parse_special=*/true), want) << name;
    EXPECT_EQ(g.at("prompt_tokens_llama_tokenize").get<std::vector<int32_t>>(), want) << name;
  }
}

TEST(GoldenPrompts, Stories260KTok512Model) { ExpectStoriesGolden(LoadSp("models/stories260K/tok512.model").get()); }

TEST(GoldenPrompts, Stories260KTokenBytesMatchLlamaCpp) {
  // Every token llama.cpp's server listed (generated and top-10 candidates) with its bytes.
  auto tok = LoadGguf("models/stories260K/stories260K.gguf");
  ASSERT_NE(tok, nullptr);
  size_t checked = 0;
  for (const char* name : kStoriesPrompts) {
    const json g = json::parse(ReadFixture(std::string("golden/stories260K/") + name + ".json"));
    std::vector<int32_t> generated;
    for (const json& step : g.at("steps")) {
      generated.push_back(step.at("id").get<int32_t>());
      for (const json& t : step.at("top")) {
        const auto bytes = t.at("bytes").get<std::vector<int>>();
        const std::string want(bytes.begin(), bytes.end());
        EXPECT_EQ(tok->TokenBytes(t.at("id").get<int32_t>()), want) << name << " id " << t.at("id");
        ++checked;
      }
    }
    // The server's generated text is the tokens' bytes in order (a continuation: no space dropped).
    std::string text;
    for (int32_t id : generated) text += tok->TokenBytes(id);
    EXPECT_EQ(text, g.at("generated_text").get<std::string>()) << name;
    IncrementalDetokenizer stream(tok.get(), {.skip_special = true, .sequence_start = false});
    std::string streamed;
    for (int32_t id : generated) streamed += stream.Push(id);
    streamed += stream.Finish();
    EXPECT_EQ(streamed, g.at("generated_text").get<std::string>()) << name;
    EXPECT_EQ(generated, g.at("generated_tokens").get<std::vector<int32_t>>()) << name;
  }
  EXPECT_GT(checked, 5000u);
}

TEST(GoldenPrompts, Stories260KGguf) { ExpectStoriesGolden(LoadGguf("models/stories260K/stories260K.gguf").get()); }

TEST(GoldenPrompts, Stories260KHfDir) { ExpectStoriesGolden(LoadHfDir("models/stories260K/hf").get()); }

TEST(GoldenPrompts, Stories260KSpecialCases) {
  auto tok = LoadSp("models/stories260K/tok512.model");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode(" ", true, true), (std::vector<int32_t>{1, 410, 410}));
  EXPECT_EQ(tok->Encode("<s>", true, true), (std::vector<int32_t>{1, 1}));
  EXPECT_EQ(tok->Encode("", true, true), (std::vector<int32_t>{1}));
  EXPECT_EQ(tok->Encode("", false, false), (std::vector<int32_t>{}));
  // Without parse_special "<s>" is ordinary text.
  const auto plain = tok->Encode("<s>", true, false);
  ASSERT_GE(plain.size(), 2u);
  EXPECT_NE(plain[1], 1);
  EXPECT_EQ(tok->Decode(plain, true), "<s>");
}

TEST(GoldenPrompts, Stories260KPerplexityInput) {
  auto tok = LoadSp("models/stories260K/tok512.model");
  ASSERT_NE(tok, nullptr);
  const json g = json::parse(ReadFixture("golden/stories260K/perplexity.json"));
  const auto want = g.at("input_tokens_with_bos").get<std::vector<int32_t>>();
  const auto got = tok->Encode(ReadFixture("golden/stories260K/perplexity_input.txt"), true, false);
  EXPECT_EQ(got.size(), 2017u);
  EXPECT_EQ(got, want);
}

TEST(GoldenPrompts, Prose25mLlama2Tokenizer) {
  auto tok = LoadHfDir("models/prose-25m/hf");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const json g = json::parse(ReadFixture("golden/prose-25m/golden.json"));
  ASSERT_GE(g.at("cases").size(), 6u);
  for (const json& c : g.at("cases")) {
    const std::string prompt = c.at("prompt").get<std::string>();
    EXPECT_EQ(tok->Encode(prompt, true, false), c.at("prompt_tokens").get<std::vector<int32_t>>()) << prompt;
    // The reference continuation decodes to the recorded text (the prompt precedes it, so
    // tokens keep their leading spaces: decode after the prompt and take the difference).
    auto all = c.at("prompt_tokens").get<std::vector<int32_t>>();
    const auto gen = c.at("tokens").get<std::vector<int32_t>>();
    const std::string before = tok->Decode(all, true);
    all.insert(all.end(), gen.begin(), gen.end());
    const std::string after = tok->Decode(all, true);
    ASSERT_EQ(after.substr(0, before.size()), before);
    EXPECT_EQ(after.substr(before.size()), c.at("text").get<std::string>()) << prompt;
  }
}

}  // namespace
}  // namespace kvserve
