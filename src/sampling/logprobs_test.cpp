#include "sampling/logprobs.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sampling/request_sampler.h"
#include "util/paths.h"

namespace kvserve {
namespace {

TEST(LogprobsTest, ExpSumsToOneAndShiftInvariant) {
  std::vector<float> logits;
  for (int i = 0; i < 300; ++i) logits.push_back(std::sin(i * 0.37f) * 6.0f);
  double total = 0.0;
  const double lse = LogSumExp(logits);
  for (float l : logits) total += std::exp(l - lse);
  // The sum is vectorized in float lanes (double across 1024-entry blocks), so lse
  // is good to a few float ulps; logprobs are reported as float anyway.
  EXPECT_NEAR(total, 1.0, 1e-6);

  const LogprobInfo a = ComputeLogprobs(logits, 5, 20);
  for (float& l : logits) l += 10000.0f;  // no overflow: max is subtracted first
  const LogprobInfo b = ComputeLogprobs(logits, 5, 20);
  EXPECT_NEAR(a.logprob, b.logprob, 2e-3);  // float spacing at 1e4 is ~1e-3
  ASSERT_EQ(a.top.size(), b.top.size());
  // Shifted values collapse onto a coarser float grid, so near-ties may swap; the
  // logprobs at each rank must still agree.
  for (size_t i = 0; i < a.top.size(); ++i) EXPECT_NEAR(a.top[i].logprob, b.top[i].logprob, 2e-3);
}

TEST(LogprobsTest, TopNOrderTiesRankAndSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {1.0f, 3.0f, -inf, 3.0f, std::nanf(""), 2.0f};
  const LogprobInfo info = ComputeLogprobs(logits, 5, 10);
  const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
  EXPECT_NEAR(info.logprob, 2.0 - lse, 1e-6);
  EXPECT_EQ(info.rank, 3);  // two tokens (1 and 3) have larger logits
  // NaN is skipped; -inf is listed last with logprob -inf; ties lower id first.
  ASSERT_EQ(info.top.size(), 5u);
  const int32_t expected[] = {1, 3, 5, 0, 2};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(info.top[i].token, expected[i]);
  EXPECT_EQ(info.top[4].logprob, -inf);
  EXPECT_EQ(ComputeLogprobs(logits, 1, 0).top.size(), 0u);
  EXPECT_EQ(ComputeLogprobs(logits, 1, 0).rank, 1);
}

// Real distributions: stories260K top-10 logprobs recorded by llama.cpp. The
// remaining mass is spread evenly over the other 502 tokens, which leaves the
// log-softmax of the top 10 exactly the recorded values.
TEST(LogprobsTest, ReproducesGoldenStories260KTopTen) {
  constexpr int kVocab = 512;
  for (const char* name : {"once_upon_a_time", "hello", "long_300_tokens"}) {
    const std::string path = SharedPath(std::string("golden/stories260K/") + name + ".json");
    std::ifstream in(path);
    ASSERT_TRUE(in.good()) << "missing fixture " << path;
    const nlohmann::json golden = nlohmann::json::parse(in);
    const auto& steps = golden.at("steps");
    ASSERT_EQ(steps.size(), 64u) << path;
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    greedy.logprobs = 10;
    RequestSampler sampler(greedy, golden.at("prompt_tokens").get<std::vector<int32_t>>(), kVocab, 2, 0, 0);
    SamplerWorkspace ws;
    for (size_t k = 0; k < steps.size(); ++k) {
      const auto& top = steps[k].at("top");
      ASSERT_EQ(top.size(), 10u);
      double top_mass = 0.0;
      for (const auto& t : top) top_mass += std::exp(t.at("logprob").get<double>());
      const float rest = static_cast<float>(std::log((1.0 - top_mass) / (kVocab - 10)));
      std::vector<float> logits(kVocab, rest);
      for (const auto& t : top) logits[t.at("id").get<int>()] = t.at("logprob").get<float>();
      ASSERT_LT(rest, logits[top[9].at("id").get<int>()]) << name << " step " << k;

      const auto r = sampler.Sample(logits, ws);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->token, steps[k].at("id").get<int>()) << name << " step " << k;
      EXPECT_NEAR(r->logprob, steps[k].at("logprob").get<double>(), 1e-5);
      ASSERT_EQ(r->logprobs->top.size(), 10u);
      for (size_t i = 0; i < 10; ++i) {
        EXPECT_NEAR(r->logprobs->top[i].logprob, top[i].at("logprob").get<double>(), 1e-5) << name << " step " << k;
        // Same id unless llama.cpp listed an exact tie in another order.
        const bool tied = (i + 1 < 10 && top[i].at("logprob") == top[i + 1].at("logprob")) ||
                          (i > 0 && top[i].at("logprob") == top[i - 1].at("logprob"));
        if (!tied) {
          EXPECT_EQ(r->logprobs->top[i].token, top[i].at("id").get<int>()) << name << " step " << k;
        }
      }
    }
  }
}

}  // namespace
}  // namespace kvserve
