// Per-request sampling settings (OpenAI / vLLM vocabulary) and their validation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace kvserve {

// Temperatures below this are treated as greedy (vLLM's epsilon), so 0 and
// tiny values that would overflow exp() behave identically.
inline constexpr float kGreedyTemperatureEpsilon = 1e-5f;
inline constexpr int kMaxLogprobs = 20;
inline constexpr float kMaxAbsLogitBias = 100.0f;

struct SamplingParams {
  // 0 (or < kGreedyTemperatureEpsilon) = greedy argmax.
  float temperature = 1.0f;
  // Keep the k most likely tokens (ties with the k-th are kept). 0 or -1 = off.
  int top_k = 0;
  // Keep the smallest most-likely set with mass >= top_p. 1 = off.
  float top_p = 1.0f;
  // Drop tokens whose probability is below min_p * max probability. 0 = off.
  float min_p = 0.0f;
  // HF / llama.cpp semantics over prompt + generated tokens: positive logits
  // are divided by it, negative ones multiplied. 1 = off.
  float repetition_penalty = 1.0f;
  // OpenAI semantics over generated tokens only:
  //   logit -= presence_penalty * [count > 0] + frequency_penalty * count.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Added to the logit of a token id. Values in [-100, 100], or -inf to ban.
  std::map<int32_t, float> logit_bias;
  // Fixes the random stream. Unset = a seed is drawn from the SeedSource.
  std::optional<uint64_t> seed;
  // Generation ends when one of these is sampled (the token is kept in the
  // output, like EOS; vLLM does the same).
  std::vector<int32_t> stop_token_ids;
  // Generation ends when one of these appears in the text; it is never emitted.
  std::vector<std::string> stop;
  // Unset = until the context window is full.
  std::optional<int> max_tokens;
  // EOS and stop_token_ids are banned until this many tokens were generated.
  int min_tokens = 0;
  // EOS does not end generation (and is not banned by min_tokens).
  bool ignore_eos = false;
  // Unset = no logprobs. N in [0, 20]: the sampled token's logprob plus the
  // N most likely tokens' (raw model distribution, see request_sampler.h).
  std::optional<int> logprobs;
  // Sequences returned, and sequences generated (the best n by cumulative
  // logprob are returned). best_of unset = n.
  int n = 1;
  std::optional<int> best_of;

  bool is_greedy() const { return temperature < kGreedyTemperatureEpsilon; }
  int effective_best_of() const { return best_of.value_or(n); }
  bool has_penalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }

  // InvalidArgument with a one-line message naming the field, the allowed
  // range and the value, e.g. "top_p must be in (0, 1], got 1.5".
  Status Validate(int vocab_size) const;
};

}  // namespace kvserve
