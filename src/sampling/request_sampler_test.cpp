#include "sampling/request_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "sampling/chi_square_test_util.h"

namespace kvserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<float> RandomLogits(size_t vocab, uint32_t seed, float scale = 2.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> out(vocab);
  for (float& l : out) l = normal(gen);
  return out;
}

SampleResult MustSample(RequestSampler& s, std::span<const float> logits, SamplerWorkspace& ws) {
  auto r = s.Sample(logits, ws);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : SampleResult{};
}

TEST(RequestSamplerTest, GreedyIsArgmaxWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0.0f;
  SamplerWorkspace ws;
  constexpr int kVocab = 32000;
  RequestSampler s(p, {}, kVocab, std::nullopt, 1, 0);
  for (uint32_t step = 0; step < 50; ++step) {
    const auto logits = RandomLogits(kVocab, step);
    const auto r = MustSample(s, logits, ws);
    EXPECT_EQ(r.token, std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_TRUE(std::isnan(r.logprob));  // not requested
  }
  std::vector<float> tied(10, 0.0f);
  tied[7] = tied[3] = 5.0f;
  RequestSampler small(p, {}, 10, std::nullopt, 1, 0);
  EXPECT_EQ(MustSample(small, tied, ws).token, 3);
}

// Markov "model": the next logits depend on the previous token, as with a real LM,
// so one wrong draw would change every later step.
std::vector<float> ChainLogits(int32_t prev, int vocab) {
  std::vector<float> out(vocab);
  for (int i = 0; i < vocab; ++i) out[i] = std::sin(0.7f * i + 1.3f * prev) * 2.0f;
  return out;
}

std::vector<int32_t> RunAlone(const SamplingParams& p, uint64_t seed, uint64_t stream, int steps, int vocab) {
  RequestSampler s(p, {}, vocab, std::nullopt, seed, stream);
  SamplerWorkspace ws;
  std::vector<int32_t> out;
  int32_t prev = 0;
  for (int i = 0; i < steps; ++i) {
    prev = MustSample(s, ChainLogits(prev, vocab), ws).token;
    out.push_back(prev);
  }
  return out;
}

TEST(RequestSamplerTest, SameSeedSameTokensWhateverTheInterleaving) {
  constexpr int kVocab = 257, kSteps = 200;
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.top_k = 100;
  const uint64_t seeds[3] = {7, 8, 7};
  const uint64_t streams[3] = {0, 0, 1};
  std::vector<std::vector<int32_t>> alone;
  for (int i = 0; i < 3; ++i) alone.push_back(RunAlone(p, seeds[i], streams[i], kSteps, kVocab));
  EXPECT_NE(alone[0], alone[1]);  // another seed
  EXPECT_NE(alone[0], alone[2]);  // another stream (n > 1) of the same seed

  // Three requests in one "batch", visited in a different random order each step,
  // sharing one workspace; sampler 1 joins late (continuous batching).
  std::vector<RequestSampler> samplers;
  for (int i = 0; i < 3; ++i) samplers.emplace_back(p, std::span<const int32_t>{}, kVocab, std::nullopt, seeds[i], streams[i]);
  SamplerWorkspace ws;
  std::vector<std::vector<int32_t>> together(3);
  std::vector<int32_t> prev(3, 0);
  std::mt19937 order_gen(99);
  for (int step = 0; step < kSteps + 30; ++step) {
    std::vector<int> order = {0, 1, 2};
    std::shuffle(order.begin(), order.end(), order_gen);
    for (int i : order) {
      const int my_step = i == 1 ? step - 30 : step;
      if (my_step < 0 || my_step >= kSteps) continue;
      prev[i] = MustSample(samplers[i], ChainLogits(prev[i], kVocab), ws).token;
      together[i].push_back(prev[i]);
    }
  }
  EXPECT_EQ(together, alone);
  EXPECT_EQ(RunAlone(p, 7, 0, kSteps, kVocab), alone[0]);
}

TEST(RequestSamplerTest, UnseededRequestsDrawSeedsFromTheSource) {
  constexpr int kVocab = 64;
  SamplingParams p;
  p.n = 3;
  SeedSource source_a(5), source_b(5);
  auto a = MakeSequenceSamplers(p, {}, kVocab, std::nullopt, source_a);
  auto b = MakeSequenceSamplers(p, {}, kVocab, std::nullopt, source_b);
  auto c = MakeSequenceSamplers(p, {}, kVocab, std::nullopt, source_a);  // next request
  ASSERT_EQ(a.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a[i].seed(), a[0].seed());
    EXPECT_EQ(a[i].stream(), static_cast<uint64_t>(i));
    EXPECT_EQ(a[i].seed(), b[i].seed());
  }
  EXPECT_NE(c[0].seed(), a[0].seed());
  p.seed = 1234;
  p.best_of = 5;
  auto seeded = MakeSequenceSamplers(p, {}, kVocab, std::nullopt, source_a);
  ASSERT_EQ(seeded.size(), 5u);
  EXPECT_EQ(seeded[4].seed(), 1234u);
  EXPECT_TRUE(seeded[0].tracks_logprobs());  // best_of > n needs cumulative logprobs
}

TEST(RequestSamplerTest, TemperatureFrequenciesMatchSoftmax) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.25f, -1.0f, 1.5f, 0.75f};
  constexpr float kTemp = 0.8f;
  std::vector<double> probs(logits.size());
  double z = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) z += probs[i] = std::exp(logits[i] / kTemp);
  for (double& q : probs) q /= z;

  SamplingParams p;
  p.temperature = kTemp;
  p.seed = 42;
  RequestSampler s(p, {}, static_cast<int>(logits.size()), std::nullopt, *p.seed, 0);
  SamplerWorkspace ws;
  constexpr int kDraws = 100000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[MustSample(s, logits, ws).token];
  const double x = testing::ChiSquare(counts, probs, kDraws);
  // 8 degrees of freedom: a correct sampler fails with probability 1e-6. An
  // unapplied temperature (T = 1) gives chi2 > 1000 at this sample size.
  EXPECT_GT(testing::ChiSquarePValueEvenDof(x, 8), 1e-6) << "chi2=" << x;
  // And it does not simply pass everything: the same counts against T = 1 fail.
  std::vector<double> wrong(logits.size());
  double zw = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) zw += wrong[i] = std::exp(logits[i]);
  for (double& q : wrong) q /= zw;
  EXPECT_LT(testing::ChiSquarePValueEvenDof(testing::ChiSquare(counts, wrong, kDraws), 8), 1e-6);
}

// Successive draws of one sequence must be independent (each step its own
// uniform): the joint frequencies of consecutive token pairs are the products.
TEST(RequestSamplerTest, ConsecutiveDrawsAreIndependent) {
  const std::vector<float> logits = {0.0f, 0.5f, -0.5f};
  std::vector<double> probs(3);
  double z = 0.0;
  for (int i = 0; i < 3; ++i) z += probs[i] = std::exp(logits[i]);
  for (double& q : probs) q /= z;
  std::vector<double> pair_probs;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) pair_probs.push_back(probs[a] * probs[b]);
  SamplingParams p;
  p.seed = 5;
  RequestSampler s(p, {}, 3, std::nullopt, 5, 0);
  SamplerWorkspace ws;
  constexpr int kPairs = 50000;
  std::vector<int> counts(9, 0);
  for (int i = 0; i < kPairs; ++i) {
    const int a = MustSample(s, logits, ws).token;
    const int b = MustSample(s, logits, ws).token;
    ++counts[a * 3 + b];
  }
  // 8 degrees of freedom, failure probability 1e-6 for a correct sampler; a
  // reused uniform would put almost all mass on the diagonal (chi2 > 50000).
  const double x = testing::ChiSquare(counts, pair_probs, kPairs);
  EXPECT_GT(testing::ChiSquarePValueEvenDof(x, 8), 1e-6) << "chi2=" << x;
}

// The dense path (no truncation) skips whole blocks of weights during the draw;
// with a vocab of several blocks, the frequencies of 9 token ranges must match.
TEST(RequestSamplerTest, DenseDrawAcrossBlocksMatchesSoftmax) {
  constexpr int kVocab = 5000;  // 5 blocks, the last partial
  std::vector<float> logits(kVocab);
  for (int i = 0; i < kVocab; ++i) logits[i] = 3.0f * std::sin(0.01f * i) + ((i % 777) == 0 ? 4.0f : 0.0f);
  logits[1024] = -std::numeric_limits<float>::infinity();  // block start, banned
  constexpr int kGroups = 9;
  auto group = [](int t) { return t * kGroups / kVocab; };
  std::vector<double> probs(kGroups, 0.0);
  double z = 0.0;
  for (int i = 0; i < kVocab; ++i) z += std::exp(static_cast<double>(logits[i]));
  for (int i = 0; i < kVocab; ++i) probs[group(i)] += std::exp(static_cast<double>(logits[i])) / z;
  SamplingParams p;
  RequestSampler s(p, {}, kVocab, std::nullopt, 77, 0);
  SamplerWorkspace ws;
  constexpr int kDraws = 60000;
  std::vector<int> counts(kGroups, 0);
  for (int i = 0; i < kDraws; ++i) {
    const int32_t t = MustSample(s, logits, ws).token;
    ASSERT_NE(t, 1024);
    ++counts[group(t)];
  }
  EXPECT_TRUE(ws.dense);
  const double x = testing::ChiSquare(counts, probs, kDraws);
  EXPECT_GT(testing::ChiSquarePValueEvenDof(x, 8), 1e-6) << "chi2=" << x;
}

TEST(RequestSamplerTest, NanLogitsAreNeverSampled) {
  const float nan = std::nanf("");
  std::vector<float> logits(40, 0.0f);
  logits[3] = nan;
  logits[5] = nan;
  logits[9] = 2.0f;
  SamplerWorkspace ws;
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  RequestSampler g(greedy, {}, 40, std::nullopt, 1, 0);
  EXPECT_EQ(MustSample(g, logits, ws).token, 9);
  for (int top_k : {0, 10}) {
    SamplingParams p;
    p.top_k = top_k;
    p.top_p = top_k ? 0.9f : 1.0f;
    RequestSampler s(p, {}, 40, std::nullopt, 1, 0);
    for (int i = 0; i < 2000; ++i) {
      const int32_t t = MustSample(s, logits, ws).token;
      ASSERT_TRUE(t != 3 && t != 5) << t;
    }
  }
}

TEST(RequestSamplerTest, NegativeInfinityBiasBansToken) {
  std::vector<float> logits = {0.0f, 0.0f, 0.0f, 10.0f, 1.0f};
  SamplingParams p;
  p.logit_bias[3] = kNegInf;
  p.seed = 3;
  SamplerWorkspace ws;
  RequestSampler s(p, {}, 5, std::nullopt, 3, 0);
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 5000; ++i) ++counts[MustSample(s, logits, ws).token];
  EXPECT_EQ(counts[3], 0);
  EXPECT_GT(counts[4], counts[0]);
  p.temperature = 0.0f;
  RequestSampler g(p, {}, 5, std::nullopt, 3, 0);
  EXPECT_EQ(MustSample(g, logits, ws).token, 4);
}

TEST(RequestSamplerTest, EverythingBannedIsAnErrorNotACrash) {
  SamplingParams p;
  for (int t = 0; t < 4; ++t) p.logit_bias[t] = kNegInf;
  SamplerWorkspace ws;
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 4.0f};
  for (float temp : {0.0f, 1.0f}) {
    p.temperature = temp;
    RequestSampler s(p, {}, 4, std::nullopt, 1, 0);
    auto r = s.Sample(logits, ws);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("no token can be sampled"), std::string::npos);
  }
}

TEST(RequestSamplerTest, MinTokensBansEosAndStopTokensThenStops) {
  constexpr int32_t kEos = 2;
  std::vector<float> logits = {0.0f, 1.0f, 9.0f, 8.0f, 0.5f};  // EOS, then stop token 3, most likely
  SamplingParams p;
  p.temperature = 0.0f;
  p.min_tokens = 3;
  p.stop_token_ids = {3};
  p.max_tokens = 10;
  SamplerWorkspace ws;
  RequestSampler s(p, {}, 5, kEos, 1, 0);
  for (int i = 0; i < 3; ++i) {
    const auto r = MustSample(s, logits, ws);
    EXPECT_EQ(r.token, 1);
    EXPECT_EQ(r.finish, FinishReason::kNone);
  }
  const auto r = MustSample(s, logits, ws);
  EXPECT_EQ(r.token, kEos);
  EXPECT_EQ(r.finish, FinishReason::kStop);
  EXPECT_EQ(r.stop_token, kEos);
  EXPECT_TRUE(s.finished());

  // A stop token id ends generation too (EOS banned by bias here).
  p.min_tokens = 0;
  p.logit_bias[kEos] = kNegInf;
  RequestSampler t(p, {}, 5, kEos, 1, 0);
  const auto rt = MustSample(t, logits, ws);
  EXPECT_EQ(rt.token, 3);
  EXPECT_EQ(rt.finish, FinishReason::kStop);
  EXPECT_EQ(rt.stop_token, 3);
}

TEST(RequestSamplerTest, IgnoreEosAndMaxTokens) {
  constexpr int32_t kEos = 0;
  const std::vector<float> logits = {5.0f, 1.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.ignore_eos = true;
  p.max_tokens = 4;
  p.min_tokens = 4;  // with ignore_eos, min_tokens does not ban EOS
  SamplerWorkspace ws;
  RequestSampler s(p, {}, 2, kEos, 1, 0);
  for (int i = 0; i < 3; ++i) {
    const auto r = MustSample(s, logits, ws);
    EXPECT_EQ(r.token, kEos);
    EXPECT_EQ(r.finish, FinishReason::kNone);
  }
  const auto last = MustSample(s, logits, ws);
  EXPECT_EQ(last.finish, FinishReason::kLength);
  EXPECT_EQ(s.num_generated(), 4);

  // The length cap takes precedence over a stop token on the last step (vLLM v1).
  p.ignore_eos = false;
  p.min_tokens = 0;
  p.max_tokens = 1;
  RequestSampler one(p, {}, 2, kEos, 1, 0);
  const auto r = MustSample(one, logits, ws);
  EXPECT_EQ(r.token, kEos);
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_FALSE(r.stop_token.has_value());
}

TEST(RequestSamplerTest, PenaltiesSteerGreedyAsHandComputed) {
  SamplerWorkspace ws;
  auto run = [&](const SamplingParams& p, std::vector<int32_t> prompt, std::vector<float> logits, int steps) {
    RequestSampler s(p, prompt, static_cast<int>(logits.size()), std::nullopt, 1, 0);
    std::vector<int32_t> out;
    for (int i = 0; i < steps; ++i) out.push_back(MustSample(s, logits, ws).token);
    return out;
  };
  SamplingParams p;
  p.temperature = 0.0f;
  p.frequency_penalty = 0.25f;
  // token0: 1 - .25 c0, token1: .875 - .25 c1 -> 0, 1, 0, 1, ...
  EXPECT_EQ(run(p, {}, {1.0f, 0.875f, 0.0f}, 6), (std::vector<int32_t>{0, 1, 0, 1, 0, 1}));
  p = {};
  p.temperature = 0.0f;
  p.presence_penalty = 0.5f;
  // 0 (1 vs .875), then 1 (.5 vs .875), then 0 forever (.5 vs .375).
  EXPECT_EQ(run(p, {}, {1.0f, 0.875f}, 5), (std::vector<int32_t>{0, 1, 0, 0, 0}));
  p = {};
  p.temperature = 0.0f;
  p.repetition_penalty = 1.25f;
  // Prompt has 0: 1/1.25 = .8 < .875 -> 1; then both penalized: .8 vs .7 -> 0.
  EXPECT_EQ(run(p, {0, 0}, {1.0f, 0.875f}, 3), (std::vector<int32_t>{1, 0, 0}));
}

TEST(RequestSamplerTest, RawLogprobsAndCumulative) {
  constexpr int kVocab = 1000;
  SamplingParams p;
  p.temperature = 0.5f;  // processing must not change the reported logprobs
  p.top_k = 5;
  p.logit_bias[17] = 50.0f;
  p.logprobs = 20;
  p.seed = 11;
  RequestSampler s(p, {}, kVocab, std::nullopt, 11, 0);
  SamplerWorkspace ws;
  double cumulative = 0.0;
  for (uint32_t step = 0; step < 20; ++step) {
    const auto logits = RandomLogits(kVocab, 1000 + step);
    const auto r = MustSample(s, logits, ws);
    EXPECT_EQ(r.token, 17);  // the bias dominates sampling...
    double lse = 0.0;
    for (float l : logits) lse += std::exp(static_cast<double>(l));
    lse = std::log(lse);
    // ...but the reported logprob is the raw model's.
    EXPECT_NEAR(r.logprob, logits[17] - lse, 1e-5);
    ASSERT_TRUE(r.logprobs.has_value());
    EXPECT_EQ(r.logprobs->rank, 1 + std::count_if(logits.begin(), logits.end(), [&](float l) { return l > logits[17]; }));
    ASSERT_EQ(r.logprobs->top.size(), 20u);
    std::vector<int32_t> order(kVocab);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(r.logprobs->top[i].token, order[i]);
      EXPECT_NEAR(r.logprobs->top[i].logprob, logits[order[i]] - lse, 1e-5);
    }
    cumulative += r.logprob;
  }
  EXPECT_NEAR(s.cumulative_logprob(), cumulative, 1e-9);
}

TEST(RequestSamplerTest, LogprobsZeroGivesOnlyTheSampledToken) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logprobs = 0;
  RequestSampler s(p, {}, 3, std::nullopt, 1, 0);
  SamplerWorkspace ws;
  const std::vector<float> logits = {0.0f, std::log(3.0f), 0.0f};
  const auto r = MustSample(s, logits, ws);
  EXPECT_EQ(r.token, 1);
  EXPECT_NEAR(r.logprob, std::log(0.6), 1e-6);
  ASSERT_TRUE(r.logprobs.has_value());
  EXPECT_TRUE(r.logprobs->top.empty());
  EXPECT_EQ(r.logprobs->rank, 1);
}

}  // namespace
}  // namespace kvserve
