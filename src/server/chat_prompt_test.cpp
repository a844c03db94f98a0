// Chat prompts through the model's own template (src/chat) with the real Llama 3 and
// Qwen3 tokenizers: the rendered text and its token ids (special tokens parsed, no
// extra BOS).
#include "server/chat_prompt.h"

#include <gtest/gtest.h>

#include "model/vocab_loader.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace kvserve::server {
namespace {

std::unique_ptr<Tokenizer> Load(const std::string& rel) {
  auto spec = LoadVocabFromTokenizerJson(SharedPath(rel));
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  auto tok = Tokenizer::Create(*spec);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return std::move(tok).value();
}

TEST(ChatPromptTemplate, Llama3RendersItsOwnFormat) {
  auto tok = Load("tokenizers/llama3/tokenizer.json");
  ASSERT_FALSE(tok->chat_template().empty());
  auto p = RenderChatPrompt(*tok, {{"system", "Be brief."}, {"user", "Hi"}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // Derived from the template: BOS, then each message as header + "\n\n" + trimmed content + <|eot_id|>,
  // then the assistant header (add_generation_prompt).
  EXPECT_EQ(p->text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  std::vector<int32_t> ids = tok->Encode(p->text, p->add_special, p->parse_special);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], tok->TokenToId("<|begin_of_text|>"));
  EXPECT_NE(ids[1], tok->TokenToId("<|begin_of_text|>"));  // no second BOS
  EXPECT_EQ(ids[1], tok->TokenToId("<|start_header_id|>"));
}

TEST(ChatPromptTemplate, Qwen3RendersImStartBlocks) {
  auto tok = Load("tokenizers/qwen3/tokenizer.json");
  ASSERT_FALSE(tok->chat_template().empty());
  auto p = RenderChatPrompt(*tok, {{"user", "Hi"}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  std::vector<int32_t> ids = tok->Encode(p->text, p->add_special, p->parse_special);
  EXPECT_EQ(ids.front(), tok->TokenToId("<|im_start|>"));
}

}  // namespace
}  // namespace kvserve::server
