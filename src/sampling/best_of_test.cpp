#include "sampling/best_of.h"

#include <cmath>

#include "sampling/request_sampler.h"

#include <vector>

#include <gtest/gtest.h>

namespace kvserve {
namespace {

TEST(BestOfTest, RanksByCumulativeLogprobThenIndex) {
  const std::vector<SequenceScore> scores = {
      {0, -5.0, 10}, {1, -2.0, 2}, {2, -3.0, 12}, {3, -2.0, 4}, {4, -9.0, 30}};
  EXPECT_EQ(SelectBestSequences(scores, 1), (std::vector<int>{1}));
  EXPECT_EQ(SelectBestSequences(scores, 3), (std::vector<int>{1, 3, 2}));
  EXPECT_EQ(SelectBestSequences(scores, 5), (std::vector<int>{1, 3, 2, 0, 4}));
  // Per token: 0: -.5, 1: -1, 2: -.25, 3: -.5, 4: -.3.
  EXPECT_EQ(SelectBestSequences(scores, 3, BestOfRanking::kMeanLogprob), (std::vector<int>{2, 4, 0}));
}

// End to end: best_of samplers of one request, scored by their raw cumulative
// logprobs, give back the stream with the highest total.
TEST(BestOfTest, ScoresFromRequestSamplers) {
  SamplingParams p;
  p.n = 2;
  p.best_of = 4;
  p.seed = 9;
  SeedSource source(1);
  auto samplers = MakeSequenceSamplers(p, {}, 6, std::nullopt, source);
  ASSERT_EQ(samplers.size(), 4u);
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -2.0f};
  SamplerWorkspace ws;
  std::vector<SequenceScore> scores;
  for (auto& s : samplers) {
    ASSERT_TRUE(s.tracks_logprobs());
    double sum = 0.0;
    for (int i = 0; i < 8; ++i) {
      auto r = s.Sample(logits, ws);
      ASSERT_TRUE(r.ok());
      EXPECT_FALSE(std::isnan(r->logprob));
      sum += r->logprob;
    }
    EXPECT_NEAR(s.cumulative_logprob(), sum, 1e-9);
    scores.push_back(s.score());
  }
  const auto best = SelectBestSequences(scores, p.n);
  ASSERT_EQ(best.size(), 2u);
  for (const auto& sc : scores) {
    if (sc.index != best[0] && sc.index != best[1]) {
      EXPECT_LE(sc.cumulative_logprob, scores[best[1]].cumulative_logprob);
    }
  }
  EXPECT_GE(scores[best[0]].cumulative_logprob, scores[best[1]].cumulative_logprob);
}

}  // namespace
}  // namespace kvserve
