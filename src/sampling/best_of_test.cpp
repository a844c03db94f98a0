#include "sampling/best_of.h"

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

}  // namespace
}  // namespace kvserve
