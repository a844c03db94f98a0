#include "sampling/sampling_params.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace kvserve {
namespace {

constexpr int kVocab = 512;

std::string ErrorOf(const SamplingParams& p) {
  Status s = p.Validate(kVocab);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  return s.message();
}

TEST(SamplingParamsTest, DefaultsAreValid) {
  EXPECT_TRUE(SamplingParams{}.Validate(kVocab).ok());
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_k = -1;
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  p.logprobs = 0;
  p.logit_bias[0] = -std::numeric_limits<float>::infinity();
  p.logit_bias[511] = 100.0f;
  p.stop_token_ids = {0, 511};
  p.max_tokens = 1;
  p.min_tokens = 1;
  p.n = 2;
  p.best_of = 2;
  EXPECT_TRUE(p.Validate(kVocab).ok()) << p.Validate(kVocab).ToString();
}

TEST(SamplingParamsTest, RangeErrorsNameFieldRangeAndValue) {
  SamplingParams p;
  p.top_p = 1.5f;
  EXPECT_EQ(ErrorOf(p), "top_p must be in (0, 1], got 1.5");
  p.top_p = 0.0f;
  EXPECT_EQ(ErrorOf(p), "top_p must be in (0, 1], got 0");
  p.top_p = std::nanf("");
  EXPECT_EQ(ErrorOf(p), "top_p must be in (0, 1], got nan");

  p = {};
  p.temperature = -0.5f;
  EXPECT_EQ(ErrorOf(p), "temperature must be a finite number >= 0, got -0.5");
  p.temperature = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ErrorOf(p), "temperature must be a finite number >= 0, got inf");

  p = {};
  p.top_k = -2;
  EXPECT_EQ(ErrorOf(p), "top_k must be -1 or 0 (off) or >= 1, got -2");
  p = {};
  p.min_p = 1.25f;
  EXPECT_EQ(ErrorOf(p), "min_p must be in [0, 1], got 1.25");
  p = {};
  p.repetition_penalty = 0.0f;
  EXPECT_EQ(ErrorOf(p), "repetition_penalty must be a finite number > 0, got 0");
  p = {};
  p.presence_penalty = 2.5f;
  EXPECT_EQ(ErrorOf(p), "presence_penalty must be in [-2, 2], got 2.5");
  p = {};
  p.frequency_penalty = -3.0f;
  EXPECT_EQ(ErrorOf(p), "frequency_penalty must be in [-2, 2], got -3");
  p = {};
  p.logit_bias[512] = 1.0f;
  EXPECT_EQ(ErrorOf(p), "logit_bias token id must be in [0, 512), got 512");
  p = {};
  p.logit_bias[-1] = 1.0f;
  EXPECT_EQ(ErrorOf(p), "logit_bias token id must be in [0, 512), got -1");
  p = {};
  p.logit_bias[7] = 150.0f;
  EXPECT_EQ(ErrorOf(p), "logit_bias for token 7 must be in [-100, 100] or -inf, got 150");
  p.logit_bias[7] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ErrorOf(p), "logit_bias for token 7 must be in [-100, 100] or -inf, got inf");
  p = {};
  p.stop_token_ids = {3, 9999};
  EXPECT_EQ(ErrorOf(p), "stop_token_ids entry must be in [0, 512), got 9999");
  p = {};
  p.stop = {"ok", ""};
  EXPECT_EQ(ErrorOf(p), "stop[1] must be a non-empty string");
  p = {};
  p.max_tokens = 0;
  EXPECT_EQ(ErrorOf(p), "max_tokens must be >= 1, got 0");
  p = {};
  p.min_tokens = -1;
  EXPECT_EQ(ErrorOf(p), "min_tokens must be >= 0, got -1");
  p = {};
  p.max_tokens = 4;
  p.min_tokens = 5;
  EXPECT_EQ(ErrorOf(p), "min_tokens must be <= max_tokens (4), got 5");
  p = {};
  p.logprobs = 21;
  EXPECT_EQ(ErrorOf(p), "logprobs must be in [0, 20], got 21");
  p.logprobs = -1;
  EXPECT_EQ(ErrorOf(p), "logprobs must be in [0, 20], got -1");
  p = {};
  p.n = 0;
  EXPECT_EQ(ErrorOf(p), "n must be >= 1, got 0");
  p = {};
  p.n = 3;
  p.best_of = 2;
  EXPECT_EQ(ErrorOf(p), "best_of must be >= n (3), got 2");
  EXPECT_EQ(SamplingParams{}.Validate(0).message(), "vocab_size must be positive, got 0");
}

TEST(SamplingParamsTest, GreedyThreshold) {
  SamplingParams p;
  p.temperature = 0.0f;
  EXPECT_TRUE(p.is_greedy());
  p.temperature = 1e-6f;
  EXPECT_TRUE(p.is_greedy());
  p.temperature = 1e-3f;
  EXPECT_FALSE(p.is_greedy());
  EXPECT_EQ(p.effective_best_of(), 1);
  p.n = 3;
  EXPECT_EQ(p.effective_best_of(), 3);
  p.best_of = 5;
  EXPECT_EQ(p.effective_best_of(), 5);
}

}  // namespace
}  // namespace kvserve
