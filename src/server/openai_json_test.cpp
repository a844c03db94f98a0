// Response/chunk shapes, SSE framing, error JSON, metrics exposition, fallback chat template.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/metrics.h"
#include "server/openai_json.h"

namespace kvserve::server {
namespace {

using nlohmann::json;

TEST(OpenAiJson, SseFramingAndDone) {
  EXPECT_EQ(SseEvent(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_STREQ(kSseDone, "data: [DONE]\n\n");
}

TEST(OpenAiJson, InvalidUtf8IsReplacedNotThrown) {
  std::string half = "\xe2\x82";  // first two bytes of a 3-byte character
  std::string s;
  ASSERT_NO_THROW(s = Dump(json{{"text", half}}));
  EXPECT_EQ(s, "{\"text\":\"\xef\xbf\xbd\"}");  // one U+FFFD for the truncated sequence
}

TEST(OpenAiJson, UsageTotals) {
  Usage u{7, 5, 3};
  json j = u.ToJson();
  EXPECT_EQ(j["prompt_tokens"], 7);
  EXPECT_EQ(j["completion_tokens"], 5);
  EXPECT_EQ(j["total_tokens"], 12);
  EXPECT_EQ(j["prompt_tokens_details"]["cached_tokens"], 3);
}

TEST(OpenAiJson, CompletionChunkShape) {
  json c = CompletionChunk("cmpl-1", 100, "m", 2, "hi", "", nullptr);
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["id"], "cmpl-1");
  EXPECT_EQ(c["created"], 100);
  EXPECT_EQ(c["model"], "m");
  ASSERT_EQ(c["choices"].size(), 1u);
  EXPECT_EQ(c["choices"][0]["index"], 2);
  EXPECT_EQ(c["choices"][0]["text"], "hi");
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
  json f = CompletionChunk("cmpl-1", 100, "m", 0, "", "length", nullptr);
  EXPECT_EQ(f["choices"][0]["finish_reason"], "length");
}

TEST(OpenAiJson, ChatChunkAndUsageChunk) {
  json c = ChatChunk("chatcmpl-1", 1, "m", 0, {{"role", "assistant"}, {"content", ""}}, "", nullptr);
  EXPECT_EQ(c["object"], "chat.completion.chunk");
  EXPECT_EQ(c["choices"][0]["delta"]["role"], "assistant");
  json e = ChatChunk("chatcmpl-1", 1, "m", 0, json::object(), "stop", nullptr);
  EXPECT_TRUE(e["choices"][0]["delta"].empty());
  EXPECT_EQ(e["choices"][0]["finish_reason"], "stop");
  json u = UsageChunk("chatcmpl-1", 1, "m", true, Usage{3, 4, 0});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 7);
}

TEST(OpenAiJson, ResponseShapes) {
  json choices = json::array({{{"index", 0}, {"text", "x"}, {"logprobs", nullptr}, {"finish_reason", "stop"}}});
  json r = CompletionResponse("cmpl-9", 5, "m", choices, Usage{1, 1, 0});
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], "x");
  EXPECT_EQ(r["usage"]["total_tokens"], 2);
  EXPECT_EQ(ChatResponse("c", 5, "m", json::array(), Usage{})["object"], "chat.completion");
}

TEST(ApiErrors, OpenAiShapeAndCodes) {
  ApiError e = BadRequest("'top_p' must be in (0, 1], got 2", "top_p");
  json j = e.ToJson();
  EXPECT_EQ(j["error"]["message"], "'top_p' must be in (0, 1], got 2");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "top_p");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_EQ(Unauthorized().http_status, 401);
  EXPECT_EQ(Unauthorized().ToJson()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(NotFound("x").http_status, 404);
  ApiError full = FromStatus(Status::ResourceExhausted("waiting queue full (1024)"), 2);
  EXPECT_EQ(full.http_status, 429);
  EXPECT_EQ(full.retry_after_s, 2);
  EXPECT_EQ(FromStatus(Status::InvalidArgument("prompt too long"), 1).http_status, 400);
  EXPECT_EQ(FromStatus(Status::Internal("boom"), 1).http_status, 500);
  EXPECT_EQ(Unavailable("draining", 1).http_status, 503);
}

TEST(ChatPrompt, FallbackTemplate) {
  std::vector<ChatMessage> msgs = {{"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Story?"}};
  EXPECT_EQ(RenderFallbackChat(msgs), "System: Be kind.\nUser: Hi\nAssistant: Hello.\nUser: Story?\nAssistant:");
  EXPECT_EQ(RenderFallbackChat({{"developer", "d"}, {"tool", "t"}}), "System: d\nTool: t\nAssistant:");
}

TEST(Metrics, HistogramIsCumulative) {
  Histogram h({0.1, 1.0});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(0.5);
  h.Observe(7);
  std::string out;
  h.Render("x_seconds", "help", out);
  EXPECT_NE(out.find("# TYPE x_seconds histogram\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum 8.05\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count 4\n"), std::string::npos) << out;
}

TEST(Metrics, RendersEngineGaugesAndCounters) {
  Metrics m;
  m.CountRequest("/v1/completions", Outcome::kSuccess);
  m.CountRequest("/v1/completions", Outcome::kSuccess);
  m.CountRequest("/v1/completions", Outcome::kRejected);
  m.CountFinish("length");
  m.AddPromptTokens(11);
  m.AddGenerationTokens(5);
  m.ttft().Observe(0.2);
  EngineStats s;
  s.num_running = 3;
  s.num_waiting = 4;
  s.preemptions_recompute = 5;
  s.preemptions_swap = 6;
  s.kv.num_blocks = 100;
  s.kv.used_blocks = 25;
  s.kv.free_blocks = 75;
  s.kv.cached_blocks = 9;
  s.kv.cow_copies = 2;
  s.kv.prefix_hit_rate = 0.5;
  std::string out = m.Render(s, 7);
  for (const char* want :
       {"kvserve_requests_total{endpoint=\"/v1/completions\",outcome=\"success\"} 2\n",
        "kvserve_requests_total{endpoint=\"/v1/completions\",outcome=\"rejected\"} 1\n",
        "kvserve_sequences_finished_total{reason=\"length\"} 1\n", "kvserve_prompt_tokens_total 11\n",
        "kvserve_generation_tokens_total 5\n", "kvserve_time_to_first_token_seconds_count 1\n",
        "kvserve_http_requests_in_flight 7\n", "kvserve_num_requests_running 3\n", "kvserve_num_requests_waiting 4\n",
        "kvserve_kv_blocks_total 100\n", "kvserve_kv_blocks_used 25\n", "kvserve_kv_blocks_free 75\n",
        "kvserve_kv_blocks_cached 9\n", "kvserve_kv_usage_ratio 0.25\n", "kvserve_prefix_cache_hit_rate 0.5\n",
        "kvserve_preemptions_total{mode=\"recompute\"} 5\n", "kvserve_preemptions_total{mode=\"swap\"} 6\n",
        "kvserve_kv_cow_copies_total 2\n", "# TYPE kvserve_kv_blocks_used gauge\n",
        "# TYPE kvserve_requests_total counter\n"}) {
    EXPECT_NE(out.find(want), std::string::npos) << "missing: " << want;
  }
  EXPECT_EQ(m.requests("/v1/completions", Outcome::kSuccess), 2u);
}

}  // namespace
}  // namespace kvserve::server
