// Log-probabilities reported to clients, from the RAW model distribution:
// log_softmax of the unprocessed logits, before bias, penalties, temperature
// and truncation. This is vLLM v1's default ("raw_logprobs") and what
// llama.cpp's n_probs reports with post_sampling_probs off; it makes the
// numbers comparable across sampling settings and with the golden files.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kvserve {

struct TokenLogprob {
  int32_t token;
  float logprob;
};

struct LogprobInfo {
  float logprob = 0.0f;  // of the queried token
  int rank = 0;          // 1 + number of tokens with a strictly larger logit
  std::vector<TokenLogprob> top;  // the top_n most likely, descending (ties: lower id first)
};

// log(sum(exp(logits))), ignoring NaN; -inf when no logit is finite.
double LogSumExp(std::span<const float> logits);

// REQUIRES: 0 <= token < logits.size(), top_n >= 0.
LogprobInfo ComputeLogprobs(std::span<const float> logits, int32_t token, int top_n);

}  // namespace kvserve
