#include "sampling/sampling_params.h"

#include <cmath>

#include <fmt/format.h>

namespace kvserve {
namespace {

Status Bad(std::string msg) { return Status::InvalidArgument(std::move(msg)); }

}  // namespace

Status SamplingParams::Validate(int vocab_size) const {
  if (vocab_size <= 0) return Bad(fmt::format("vocab_size must be positive, got {}", vocab_size));
  if (!std::isfinite(temperature) || temperature < 0.0f)
    return Bad(fmt::format("temperature must be a finite number >= 0, got {}", temperature));
  if (top_k < -1) return Bad(fmt::format("top_k must be -1 or 0 (off) or >= 1, got {}", top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Bad(fmt::format("top_p must be in (0, 1], got {}", top_p));
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Bad(fmt::format("min_p must be in [0, 1], got {}", min_p));
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0.0f)
    return Bad(fmt::format("repetition_penalty must be a finite number > 0, got {}", repetition_penalty));
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    return Bad(fmt::format("presence_penalty must be in [-2, 2], got {}", presence_penalty));
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    return Bad(fmt::format("frequency_penalty must be in [-2, 2], got {}", frequency_penalty));
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0 || token >= vocab_size)
      return Bad(fmt::format("logit_bias token id must be in [0, {}), got {}", vocab_size, token));
    const bool ban = std::isinf(bias) && bias < 0.0f;
    if (!ban && !(bias >= -kMaxAbsLogitBias && bias <= kMaxAbsLogitBias))
      return Bad(fmt::format("logit_bias for token {} must be in [-100, 100] or -inf, got {}", token, bias));
  }
  for (int32_t token : stop_token_ids) {
    if (token < 0 || token >= vocab_size)
      return Bad(fmt::format("stop_token_ids entry must be in [0, {}), got {}", vocab_size, token));
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) return Bad(fmt::format("stop[{}] must be a non-empty string", i));
  }
  if (max_tokens.has_value() && *max_tokens < 1)
    return Bad(fmt::format("max_tokens must be >= 1, got {}", *max_tokens));
  if (min_tokens < 0) return Bad(fmt::format("min_tokens must be >= 0, got {}", min_tokens));
  if (max_tokens.has_value() && min_tokens > *max_tokens)
    return Bad(fmt::format("min_tokens must be <= max_tokens ({}), got {}", *max_tokens, min_tokens));
  if (logprobs.has_value() && (*logprobs < 0 || *logprobs > kMaxLogprobs))
    return Bad(fmt::format("logprobs must be in [0, {}], got {}", kMaxLogprobs, *logprobs));
  if (n < 1) return Bad(fmt::format("n must be >= 1, got {}", n));
  if (best_of.has_value() && *best_of < n)
    return Bad(fmt::format("best_of must be >= n ({}), got {}", n, *best_of));
  return Status::Ok();
}

}  // namespace kvserve
