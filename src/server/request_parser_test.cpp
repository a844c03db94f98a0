// Request parsing/validation against the real stories260K tokenizer.
#include "server/request_parser.h"

#include <gtest/gtest.h>

#include "model/model.h"
#include "util/paths.h"

namespace kvserve::server {
namespace {

using nlohmann::json;

class ParserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value().release();
    auto t = Tokenizer::Create(model_->vocab);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tok_ = std::move(t).value().release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete model_;
  }
  ParseLimits Limits() const { return {"stories", 512, tok_->vocab_size()}; }
  std::optional<ApiError> Completion(const json& body, GenerationRequest* out) {
    return ParseCompletionRequest(body, Limits(), *tok_, out);
  }
  static Model* model_;
  static Tokenizer* tok_;
};
Model* ParserTest::model_ = nullptr;
Tokenizer* ParserTest::tok_ = nullptr;

TEST_F(ParserTest, CompletionFieldsMapToSamplingParams) {
  GenerationRequest r;
  json body = {{"model", "stories"}, {"prompt", "Once upon a time"}, {"max_tokens", 7}, {"temperature", 0.5},
               {"top_p", 0.9}, {"top_k", 40}, {"min_p", 0.05}, {"presence_penalty", 0.5}, {"frequency_penalty", -0.5},
               {"repetition_penalty", 1.1}, {"seed", 42}, {"stop", {"\n", "The"}}, {"n", 2}, {"best_of", 3},
               {"logprobs", 3}, {"user", "u1"}, {"priority", -2}, {"cache_salt", "tenant-a"},
               {"logit_bias", {{"5", -100}}}};
  auto e = Completion(body, &r);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 40);
  EXPECT_FLOAT_EQ(r.params.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.params.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.params.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r.params.repetition_penalty, 1.1f);
  EXPECT_EQ(r.params.seed, 42u);
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{"\n", "The"}));
  EXPECT_EQ(r.params.n, 2);
  EXPECT_EQ(r.params.best_of, 3);
  EXPECT_EQ(r.params.logprobs, 3);
  EXPECT_EQ(r.priority, -2);
  EXPECT_EQ(r.cache_salt, HashCacheSalt("tenant-a"));
  EXPECT_NE(r.cache_salt, 0u);
  EXPECT_EQ(r.params.logit_bias.at(5), -100.0f);
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], tok_->Encode("Once upon a time", true, false));
  EXPECT_EQ(r.prompt_texts[0], "Once upon a time");
}

TEST_F(ParserTest, DefaultsFollowOpenAI) {
  GenerationRequest r;
  ASSERT_FALSE(Completion({{"prompt", "hi"}}, &r));
  EXPECT_EQ(r.params.max_tokens, 16);
  EXPECT_EQ(r.model, "stories");
  EXPECT_EQ(r.params.n, 1);
  EXPECT_FALSE(r.params.logprobs.has_value());
  EXPECT_FALSE(r.stream);
  GenerationRequest c;
  ASSERT_FALSE(ParseChatRequest({{"messages", {{{"role", "user"}, {"content", "hi"}}}}}, Limits(), &c));
  EXPECT_FALSE(c.params.max_tokens.has_value());  // chat: until the context is full
}

TEST_F(ParserTest, PromptForms) {
  GenerationRequest a;
  ASSERT_FALSE(Completion({{"prompt", {1, 200, 300}}}, &a));
  ASSERT_EQ(a.prompts.size(), 1u);
  EXPECT_EQ(a.prompts[0], (std::vector<int32_t>{1, 200, 300}));
  EXPECT_EQ(a.prompt_texts[0], tok_->Decode(a.prompts[0], true));
  GenerationRequest b;
  ASSERT_FALSE(Completion({{"prompt", {"one", "two", "three"}}}, &b));
  EXPECT_EQ(b.prompts.size(), 3u);
  GenerationRequest c;
  ASSERT_FALSE(Completion({{"prompt", {{1, 2}, {1, 3, 4}}}}, &c));
  ASSERT_EQ(c.prompts.size(), 2u);
  EXPECT_EQ(c.prompts[1].size(), 3u);
}

// Every rejection: status 400, the field in `param`, and the message names the field.
void ExpectBad(std::optional<ApiError> e, const std::string& param, const std::string& fragment) {
  ASSERT_TRUE(e.has_value()) << "accepted, expected an error on " << param;
  EXPECT_EQ(e->http_status, 400) << e->message;
  EXPECT_EQ(e->param, param) << e->message;
  EXPECT_NE(e->message.find(fragment), std::string::npos) << e->message;
  EXPECT_EQ(e->ToJson()["error"]["param"], param);
  EXPECT_EQ(e->ToJson()["error"]["type"], "invalid_request_error");
}

TEST_F(ParserTest, RejectsWrongTypesAndRanges) {
  auto bad = [&](json extra) {
    json body = {{"prompt", "hi"}};
    body.update(extra);
    GenerationRequest r;
    return Completion(body, &r);
  };
  ExpectBad(bad({{"temperature", "hot"}}), "temperature", "must be a number, got string");
  ExpectBad(bad({{"temperature", 3}}), "temperature", "[0, 2]");
  ExpectBad(bad({{"top_p", 1.5}}), "top_p", "(0, 1]");
  ExpectBad(bad({{"top_p", 0}}), "top_p", "got 0");
  ExpectBad(bad({{"min_p", -0.1}}), "min_p", "[0, 1]");
  ExpectBad(bad({{"presence_penalty", 3}}), "presence_penalty", "[-2, 2]");
  ExpectBad(bad({{"frequency_penalty", -2.5}}), "frequency_penalty", "[-2, 2]");
  ExpectBad(bad({{"max_tokens", 0}}), "max_tokens", "[1, 512]");
  ExpectBad(bad({{"max_tokens", 2.5}}), "max_tokens", "an integer");
  ExpectBad(bad({{"n", 0}}), "n", "[1, 128]");
  ExpectBad(bad({{"n", 3}, {"best_of", 2}}), "best_of", "best_of must be >= n (3), got 2");
  ExpectBad(bad({{"logprobs", 21}}), "logprobs", "[0, 20]");
  ExpectBad(bad({{"stop", 5}}), "stop", "a string or an array of strings");
  ExpectBad(bad({{"stop", {""}}}), "stop", "non-empty");
  ExpectBad(bad({{"stream", "yes"}}), "stream", "a boolean");
  ExpectBad(bad({{"stream_options", {{"include_usage", true}}}}), "stream_options", "only allowed when 'stream' is true");
  ExpectBad(bad({{"stream", true}, {"n", 1}, {"best_of", 2}}), "best_of", "cannot be streamed");
  ExpectBad(bad({{"logit_bias", {{"abc", 1}}}}), "logit_bias", "token ids in [0, 512)");
  ExpectBad(bad({{"logit_bias", {{"3", 101}}}}), "logit_bias", "[-100, 100]");
  ExpectBad(bad({{"echo", true}, {"logprobs", 1}}), "echo", "not supported");
  ExpectBad(bad({{"seed", "x"}}), "seed", "an integer");
  ExpectBad(bad({{"prompt", 12}}), "prompt", "a string, an array of token ids");
  ExpectBad(bad({{"prompt", json::array()}}), "prompt", "empty array");
  ExpectBad(bad({{"prompt", {1, 99999}}}), "prompt", "[0, 512), got 99999");
  ExpectBad(bad({{"priority", "high"}}), "priority", "an integer");
  GenerationRequest r;
  ExpectBad(Completion(json::object(), &r), "prompt", "'prompt' is required");
  auto arr = Completion(json::array({1, 2}), &r);
  ASSERT_TRUE(arr);
  EXPECT_NE(arr->message.find("must be a JSON object, got array"), std::string::npos);
}

TEST_F(ParserTest, UnknownModelIs404) {
  GenerationRequest r;
  auto e = Completion({{"model", "gpt-4"}, {"prompt", "hi"}}, &r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->http_status, 404);
  EXPECT_EQ(e->code, "model_not_found");
  EXPECT_NE(e->message.find("gpt-4"), std::string::npos);
}

TEST_F(ParserTest, PromptLongerThanContextSaysTheNumbers) {
  std::vector<int32_t> ids(600, 300);
  GenerationRequest r;
  auto e = Completion({{"prompt", ids}}, &r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->http_status, 400);
  EXPECT_NE(e->message.find("512"), std::string::npos) << e->message;
  EXPECT_NE(e->message.find("600"), std::string::npos) << e->message;
  std::vector<int32_t> ids2(500, 300);
  GenerationRequest r2;
  auto e2 = Completion({{"prompt", ids2}, {"max_tokens", 20}}, &r2);
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->param, "max_tokens");
  EXPECT_NE(e2->message.find("you requested 520 tokens (500 in the prompt, 20 for the completion)"), std::string::npos)
      << e2->message;
}

TEST_F(ParserTest, ChatFields) {
  GenerationRequest r;
  json body = {{"messages", {{{"role", "system"}, {"content", "Be brief."}},
                             {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hello"}}, {{"type", "text"}, {"text", " there"}}}}}}},
               {"max_completion_tokens", 9}, {"logprobs", true}, {"top_logprobs", 2}, {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  auto e = ParseChatRequest(body, Limits(), &r);
  ASSERT_FALSE(e) << e->message;
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].content, "Hello there");
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_EQ(r.params.logprobs, 2);
  EXPECT_TRUE(r.include_usage);

  auto bad = [&](json b) {
    GenerationRequest x;
    return ParseChatRequest(b, Limits(), &x);
  };
  json msgs = {{{"role", "user"}, {"content", "hi"}}};
  ExpectBad(bad({{"messages", json::array()}}), "messages", "at least one");
  ExpectBad(bad({{"messages", "hi"}}), "messages", "an array");
  ExpectBad(bad({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), "messages[0].role", "one of system");
  ExpectBad(bad({{"messages", {{{"role", "user"}}}}}), "messages[0].content", "required");
  ExpectBad(bad({{"messages", msgs}, {"response_format", {{"type", "json_object"}}}}), "response_format", "not supported");
  ExpectBad(bad({{"messages", msgs}, {"top_logprobs", 2}}), "top_logprobs", "requires 'logprobs': true");
  ExpectBad(bad({{"messages", msgs}, {"logprobs", true}, {"top_logprobs", 30}}), "top_logprobs", "[0, 20]");
}

TEST(CacheSalt, StableAndDistinct) {
  EXPECT_EQ(HashCacheSalt(""), 0u);
  EXPECT_EQ(HashCacheSalt("a"), HashCacheSalt("a"));
  EXPECT_NE(HashCacheSalt("a"), HashCacheSalt("b"));
}

}  // namespace
}  // namespace kvserve::server
