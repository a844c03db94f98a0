// Stage 1 of sampling: the adjustments that can change the argmax, applied in
// place, in vLLM v1's order:
//   1. bans (min_tokens: EOS and stop_token_ids until min_tokens are generated)
//   2. logit_bias (added; -inf bans)
//   3. repetition penalty over prompt + generated tokens
//      (logit > 0: logit / r, else logit * r)
//   4. frequency penalty over generated tokens (logit -= f * count)
//   5. presence penalty over generated tokens (logit -= p * [count > 0])
// Greedy sampling takes the argmax after this stage.
#pragma once

#include <cstdint>
#include <span>

#include "sampling/sampling_params.h"
#include "sampling/token_history.h"

namespace kvserve {

// REQUIRES: every id in `banned`, params.logit_bias and `history` is < logits.size().
void ApplyLogitAdjustments(std::span<float> logits, const SamplingParams& params, const TokenHistory& history,
                           std::span<const int32_t> banned);

}  // namespace kvserve
