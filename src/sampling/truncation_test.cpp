#include "sampling/truncation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "sampling/chi_square_test_util.h"
#include "sampling/philox.h"

namespace kvserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<float> LogOf(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

SamplingParams Random(float temperature = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  return p;
}

std::vector<int32_t> Tokens(const std::vector<TokenProb>& d) {
  std::vector<int32_t> out;
  for (const auto& t : d) out.push_back(t.token);
  return out;
}

// Checks d == probs restricted to `kept`, renormalized.
void ExpectRenormalized(const std::vector<TokenProb>& d, const std::vector<double>& probs,
                        const std::vector<int32_t>& kept) {
  ASSERT_EQ(Tokens(d), kept);
  double mass = 0.0;
  for (int32_t t : kept) mass += probs[t];
  double total = 0.0;
  for (const auto& t : d) {
    EXPECT_NEAR(t.prob, probs[t.token] / mass, 1e-6) << "token " << t.token;
    total += t.prob;
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
}

const std::vector<double> kProbs = {0.5, 0.2, 0.15, 0.1, 0.05};

TEST(TruncationTest, TemperatureOnlyIsSoftmaxOfScaledLogits) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, -1.0f};
  for (float t : {0.5f, 1.0f, 2.0f}) {
    const auto d = SamplingDistribution(logits, Random(t));
    ASSERT_EQ(d.size(), 4u);
    double z = 0.0;
    for (float l : logits) z += std::exp(l / t);
    for (const auto& tp : d) EXPECT_NEAR(tp.prob, std::exp(logits[tp.token] / t) / z, 1e-6);
  }
}

TEST(TruncationTest, TopKKeepsKLargestAndTies) {
  SamplingParams p = Random();
  p.top_k = 2;
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1});
  p.top_k = 1;
  const std::vector<float> tied = {1.0f, 3.0f, 3.0f, 0.0f};
  const auto d = SamplingDistribution(tied, p);
  EXPECT_EQ(Tokens(d), (std::vector<int32_t>{1, 2}));  // vLLM keeps values tied with the k-th
  p.top_k = 10;  // larger than the vocab: no-op
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1, 2, 3, 4});
}

TEST(TruncationTest, TopPKeepsSmallestPrefixReachingP) {
  SamplingParams p = Random();
  p.top_p = 0.45f;  // 0.5 alone reaches it
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0});
  p.top_p = 0.55f;
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1});
  p.top_p = 0.75f;  // mass before token 2 is 0.7 < 0.75
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1, 2});
  p.top_p = 0.99f;
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1, 2, 3, 4});
}

TEST(TruncationTest, TopPSeesTheTopKRenormalizedDistribution) {
  SamplingParams p = Random();
  p.top_p = 0.8f;
  // Alone: masses before are 0, .5, .7 (< .8) -> 3 tokens.
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1, 2});
  // After top-3 the masses are .588, .235, .176: before token 2 is .824 -> 2 tokens.
  p.top_k = 3;
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1});
}

TEST(TruncationTest, MinPRelativeToMaxAndAppliedBeforeTopP) {
  SamplingParams p = Random();
  p.min_p = 0.35f;  // threshold 0.175
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1});
  p.min_p = 0.25f;  // threshold 0.125
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1, 2});
  // vLLM v1 order: min_p leaves {0,1,2}; top_p = 0.8 over that renormalized
  // set keeps {0,1}. (v0's order, top_p first, would keep {0,1,2}.)
  p.top_p = 0.8f;
  ExpectRenormalized(SamplingDistribution(LogOf(kProbs), p), kProbs, {0, 1});
}

TEST(TruncationTest, MinPUsesTemperatureScaledProbabilities) {
  // At T = 2, p_i / p_max = sqrt(original ratio): token 3 has sqrt(0.2) = 0.447.
  SamplingParams p = Random(2.0f);
  p.min_p = 0.4f;
  const auto d = SamplingDistribution(LogOf(kProbs), p);
  EXPECT_EQ(Tokens(d), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(TruncationTest, NegativeInfinityAndNaNNeverSurvive) {
  const std::vector<float> logits = {kNegInf, 0.0f, std::nanf(""), 1.0f, kNegInf};
  const auto d = SamplingDistribution(logits, Random());
  EXPECT_EQ(Tokens(d), (std::vector<int32_t>{1, 3}));
  const std::vector<float> none = {kNegInf, std::nanf(""), kNegInf};
  EXPECT_TRUE(SamplingDistribution(none, Random()).empty());
  SamplerWorkspace ws;
  EXPECT_EQ(BuildDistribution(none, Random(), ws), 0.0);
}

// Reference for the large-vocab test: full sort, then the documented rules.
std::set<int32_t> BruteForceKept(const std::vector<float>& logits, const SamplingParams& p) {
  const size_t n = logits.size();
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::vector<double> w(n);
  const double max_z = logits[order[0]] / p.temperature;
  for (size_t i = 0; i < n; ++i) w[i] = std::exp(logits[i] / p.temperature - max_z);
  std::vector<int32_t> kept;
  for (size_t r = 0; r < n; ++r) {
    const int32_t t = order[r];
    if (p.min_p > 0 && w[t] < p.min_p) continue;
    if (p.top_k > 0 && r >= static_cast<size_t>(p.top_k) && logits[t] < logits[order[p.top_k - 1]]) continue;
    kept.push_back(t);
  }
  if (p.top_p < 1.0f) {
    double total = 0.0;
    for (int32_t t : kept) total += w[t];
    double before = 0.0;
    size_t keep = 0;
    while (keep < kept.size() && before < p.top_p * total) before += w[kept[keep++]];
    kept.resize(keep);
  }
  return {kept.begin(), kept.end()};
}

TEST(TruncationTest, LargeVocabMatchesBruteForce) {
  constexpr size_t kVocab = 152064;  // Qwen2 vocab size
  std::mt19937 gen(123);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(kVocab);
  for (float& l : logits) l = normal(gen);
  struct Case {
    int top_k;
    float top_p, min_p, temperature;
  };
  for (const Case& c : {Case{50, 1.0f, 0.0f, 1.0f}, Case{0, 0.9f, 0.0f, 1.0f}, Case{0, 0.5f, 0.0f, 0.7f},
                        Case{0, 1.0f, 0.05f, 1.0f}, Case{40, 0.95f, 0.01f, 1.3f}, Case{1000, 0.3f, 0.0f, 2.0f}}) {
    SamplingParams p = Random(c.temperature);
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    const auto d = SamplingDistribution(logits, p);
    const auto expected = BruteForceKept(logits, p);
    const auto got = Tokens(d);
    EXPECT_EQ(std::set<int32_t>(got.begin(), got.end()), expected)
        << "top_k=" << c.top_k << " top_p=" << c.top_p << " min_p=" << c.min_p;
    EXPECT_GT(got.size(), 1u);
    double total = 0.0;
    for (const auto& t : d) total += t.prob;
    EXPECT_NEAR(total, 1.0, 1e-9);
  }
}

// Draws through the hot path (BuildDistribution + DrawToken) never return an
// excluded token, and the kept tokens' frequencies match the renormalized probs.
TEST(TruncationTest, DrawsStayInKeptSetWithRenormalizedFrequencies) {
  const std::vector<double> probs = {0.3, 0.2, 0.15, 0.1, 0.08, 0.07, 0.05, 0.03, 0.02};
  const std::vector<float> logits = LogOf(probs);
  SamplingParams p = Random();
  p.top_k = 7;
  p.top_p = 0.9f;  // over top-7 mass .95: before token 5 is .83/.95 = .874 < .9; before 6 is .947 -> keep 0..5
  p.min_p = 0.05f;
  const auto dist = SamplingDistribution(logits, p);
  ASSERT_EQ(Tokens(dist), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  std::vector<double> expected;
  for (const auto& t : dist) expected.push_back(t.prob);

  SamplerWorkspace ws;
  const double total = BuildDistribution(logits, p, ws);
  SequenceRng rng(2024, 0);
  constexpr int kDraws = 120000;
  std::vector<int> counts(probs.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[DrawToken(ws, total, rng.Uniform(i))];
  EXPECT_EQ(counts[6] + counts[7] + counts[8], 0);
  counts.resize(6);
  const double x = testing::ChiSquare(counts, expected, kDraws);
  // 5 degrees of freedom. The closed form needs an even dof; P(chi2_6 >= x) >=
  // P(chi2_5 >= x), so this bound is slightly lenient: a correct sampler fails
  // it with probability < 1e-6, while a wrong renormalization (e.g. drawing
  // from the untruncated probabilities) gives chi2 in the thousands.
  EXPECT_GT(testing::ChiSquarePValueEvenDof(x, 6), 1e-6) << "chi2=" << x;
}

TEST(TruncationTest, DrawCandidateInverseCdfEdges) {
  const std::vector<WeightedToken> c = {{4, 1.0f}, {9, 0.0f}, {2, 3.0f}};
  EXPECT_EQ(DrawCandidate(c, 4.0, 0.0), 4);
  EXPECT_EQ(DrawCandidate(c, 4.0, 0.2499), 4);
  EXPECT_EQ(DrawCandidate(c, 4.0, 0.25), 2);  // a zero-weight token is never drawn
  EXPECT_EQ(DrawCandidate(c, 4.0, 0.999999), 2);
  // Rounding past the end falls back to the last token with weight.
  const std::vector<WeightedToken> tail_zero = {{1, 1.0f}, {3, 0.0f}};
  EXPECT_EQ(DrawCandidate(tail_zero, 1.0000001, 0.9999999999), 1);
}

}  // namespace
}  // namespace kvserve
