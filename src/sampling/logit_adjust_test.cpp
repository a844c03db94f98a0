#include "sampling/logit_adjust.h"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace kvserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// All values below are exact in binary floating point, so the checks are exact.
TEST(LogitAdjustTest, HandComputedPenaltiesInVllmOrder) {
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, -3.0f, 4.0f, 0.0f};
  const std::vector<int32_t> prompt = {0, 1, 1};
  TokenHistory history(prompt);
  for (int32_t t : {2, 1, 2, 3}) history.AddOutput(t);  // counts: 2->2, 1->1, 3->1

  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.logit_bias = {{0, 1.0f}, {4, -1.5f}, {5, 2.0f}};
  ApplyLogitAdjustments(logits, p, history, {});
  // token 0: bias first (2 + 1 = 3), then repetition (prompt): 3 / 2.
  // token 1: prompt and output, penalized once: -1 * 2 = -2; freq 1 * 0.5; presence 0.25.
  // token 2: output only: 0.5 / 2 = 0.25; freq 2 * 0.5 = 1; presence 0.25 -> -1.
  // token 3: output only: -3 * 2 = -6; -0.5; -0.25.
  // token 4, 5: bias only.
  const std::vector<float> expected = {1.5f, -2.75f, -1.0f, -6.75f, 2.5f, 2.0f};
  EXPECT_EQ(logits, expected);
}

TEST(LogitAdjustTest, RepetitionPenaltyBelowOneEncourages) {
  std::vector<float> logits = {2.0f, -1.0f, 3.0f};
  const std::vector<int32_t> prompt = {0, 1};
  TokenHistory history(prompt);
  SamplingParams p;
  p.repetition_penalty = 0.5f;
  ApplyLogitAdjustments(logits, p, history, {});
  EXPECT_EQ(logits, (std::vector<float>{4.0f, -0.5f, 3.0f}));
}

TEST(LogitAdjustTest, PresenceAndFrequencyIgnorePrompt) {
  std::vector<float> logits = {1.0f, 1.0f, 1.0f};
  const std::vector<int32_t> prompt = {0, 0, 0};
  TokenHistory history(prompt);
  history.AddOutput(1);
  history.AddOutput(1);
  history.AddOutput(1);
  SamplingParams p;
  p.frequency_penalty = -0.5f;  // negative values reward repeats
  p.presence_penalty = 1.0f;
  ApplyLogitAdjustments(logits, p, history, {});
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 1.0f + 1.5f - 1.0f, 1.0f}));
}

TEST(LogitAdjustTest, BansAndNegativeInfinityBiasStayBanned) {
  std::vector<float> logits = {5.0f, 1.0f, -2.0f, 0.5f};
  const std::vector<int32_t> prompt = {0, 1, 2, 3};
  TokenHistory history(prompt);
  SamplingParams p;
  p.repetition_penalty = 1.3f;
  p.logit_bias = {{0, kNegInf}, {3, 100.0f}};
  const std::vector<int32_t> bans = {3};
  ApplyLogitAdjustments(logits, p, history, bans);
  EXPECT_EQ(logits[0], kNegInf);
  EXPECT_EQ(logits[3], kNegInf);  // a ban wins over a positive bias
  EXPECT_FLOAT_EQ(logits[1], 1.0f / 1.3f);
  EXPECT_FLOAT_EQ(logits[2], -2.0f * 1.3f);
}

TEST(LogitAdjustTest, NoOpWithDefaults) {
  std::vector<float> logits = {0.1f, -0.2f, 0.3f};
  const std::vector<float> before = logits;
  TokenHistory history(std::vector<int32_t>{0, 1});
  history.AddOutput(2);
  ApplyLogitAdjustments(logits, SamplingParams{}, history, {});
  EXPECT_EQ(logits, before);
}

}  // namespace
}  // namespace kvserve
