#include "sampling/logit_adjust.h"

#include <limits>

#include "util/status.h"

namespace kvserve {
namespace {

inline float Repeat(float logit, float penalty) { return logit > 0.0f ? logit / penalty : logit * penalty; }

}  // namespace

void ApplyLogitAdjustments(std::span<float> logits, const SamplingParams& params, const TokenHistory& history,
                           std::span<const int32_t> banned) {
  const size_t vocab = logits.size();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int32_t t : banned) {
    KV_CHECK(t >= 0 && static_cast<size_t>(t) < vocab);
    logits[t] = kNegInf;
  }
  for (const auto& [t, bias] : params.logit_bias) {
    KV_CHECK(t >= 0 && static_cast<size_t>(t) < vocab);
    logits[t] += bias;
  }
  if (params.repetition_penalty != 1.0f) {
    const float r = params.repetition_penalty;
    // Each token of prompt ∪ output is penalized exactly once.
    for (int32_t t : history.prompt_tokens()) {
      KV_CHECK(t >= 0 && static_cast<size_t>(t) < vocab);
      logits[t] = Repeat(logits[t], r);
    }
    for (const auto& [t, count] : history.output_counts()) {
      KV_CHECK(t >= 0 && static_cast<size_t>(t) < vocab);
      if (!history.InPrompt(t)) logits[t] = Repeat(logits[t], r);
    }
  }
  if (params.frequency_penalty != 0.0f || params.presence_penalty != 0.0f) {
    for (const auto& [t, count] : history.output_counts()) {
      KV_CHECK(t >= 0 && static_cast<size_t>(t) < vocab);
      logits[t] -= params.frequency_penalty * static_cast<float>(count);
      if (count > 0) logits[t] -= params.presence_penalty;
    }
  }
}

}  // namespace kvserve
