#include "sampling/request_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "sampling/logit_adjust.h"
#include "sampling/logit_kernels.h"
#include "sampling/truncation.h"

namespace kvserve {
namespace {

TokenHistory MakeHistory(const SamplingParams& params, std::span<const int32_t> prompt) {
  // Only the repetition penalty looks at the prompt; skip the copy otherwise.
  return params.repetition_penalty != 1.0f ? TokenHistory(prompt) : TokenHistory();
}

// Index of the largest logit (lowest id on ties, NaN skipped); -1 when every
// logit is -inf or NaN.
int32_t ArgMax(std::span<const float> logits) {
  const MaxResult mr = MaxLogit(logits);
  if (!mr.has_nan) {
    if (!(mr.max > -std::numeric_limits<float>::infinity())) return -1;
    return static_cast<int32_t>(std::find(logits.begin(), logits.end(), mr.max) - logits.begin());
  }
  int32_t best = -1;
  float best_val = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > best_val) {
      best_val = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

}  // namespace

RequestSampler::RequestSampler(const SamplingParams& params, std::span<const int32_t> prompt, int vocab_size,
                               std::optional<int32_t> eos_token, uint64_t seed, uint64_t stream)
    : params_(params),
      vocab_size_(vocab_size),
      eos_token_(eos_token),
      rng_(seed, stream),
      history_(MakeHistory(params, prompt)),
      want_logprob_(params.logprobs.has_value() || params.effective_best_of() > params.n) {
  const Status valid = params.Validate(vocab_size);
  KV_CHECK_MSG(valid.ok(), valid.ToString());
  KV_CHECK(!eos_token.has_value() || (*eos_token >= 0 && *eos_token < vocab_size));
}

bool RequestSampler::NeedsAdjustment() const {
  const bool min_tokens_active =
      num_generated_ < params_.min_tokens && (!params_.stop_token_ids.empty() || (eos_token_ && !params_.ignore_eos));
  return min_tokens_active || !params_.logit_bias.empty() || params_.has_penalties();
}

void RequestSampler::CollectBans(std::vector<int32_t>& bans) const {
  bans.clear();
  if (num_generated_ >= params_.min_tokens) return;
  bans = params_.stop_token_ids;
  if (eos_token_ && !params_.ignore_eos) bans.push_back(*eos_token_);
}

StatusOr<SampleResult> RequestSampler::Sample(std::span<const float> logits, SamplerWorkspace& ws) {
  KV_CHECK(!finished_);
  KV_CHECK_MSG(logits.size() == static_cast<size_t>(vocab_size_),
               fmt::format("logits has {} entries, vocab is {}", logits.size(), vocab_size_));

  std::span<const float> work = logits;
  if (NeedsAdjustment()) {
    ws.logits.assign(logits.begin(), logits.end());
    std::vector<int32_t> bans;
    CollectBans(bans);
    ApplyLogitAdjustments(ws.logits, params_, history_, bans);
    work = ws.logits;
  }

  SampleResult result;
  if (params_.is_greedy()) {
    result.token = ArgMax(work);
  } else {
    const double total = BuildDistribution(work, params_, ws);
    if (total > 0.0) result.token = DrawToken(ws, total, rng_.Uniform(static_cast<uint64_t>(num_generated_)));
  }
  if (result.token < 0) {
    return Status::InvalidArgument(
        fmt::format("no token can be sampled at output position {}: every logit is -inf or NaN after "
                    "logit_bias, min_tokens bans and penalties",
                    num_generated_));
  }

  if (params_.logprobs.has_value()) {
    result.logprobs = ComputeLogprobs(logits, result.token, *params_.logprobs);
    result.logprob = result.logprobs->logprob;
  } else if (want_logprob_) {
    result.logprob = static_cast<float>(logits[result.token] - LogSumExp(logits));
  } else {
    result.logprob = std::numeric_limits<float>::quiet_NaN();
  }
  if (want_logprob_) cumulative_logprob_ += result.logprob;

  ++num_generated_;
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f || params_.repetition_penalty != 1.0f)
    history_.AddOutput(result.token);

  // Same precedence as vLLM v1: the length cap is checked before stop tokens.
  const bool is_stop_token =
      (eos_token_ && result.token == *eos_token_ && !params_.ignore_eos) ||
      std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), result.token) !=
          params_.stop_token_ids.end();
  if (params_.max_tokens && num_generated_ >= *params_.max_tokens) {
    result.finish = FinishReason::kLength;
  } else if (is_stop_token) {
    result.finish = FinishReason::kStop;
    result.stop_token = result.token;
  }
  finished_ = result.finish != FinishReason::kNone;
  return result;
}

uint64_t ResolveSeed(const SamplingParams& params, SeedSource& source) {
  return params.seed.has_value() ? *params.seed : source.NextSeed();
}

std::vector<RequestSampler> MakeSequenceSamplers(const SamplingParams& params, std::span<const int32_t> prompt,
                                                 int vocab_size, std::optional<int32_t> eos_token,
                                                 SeedSource& source) {
  const uint64_t seed = ResolveSeed(params, source);
  std::vector<RequestSampler> out;
  const int count = params.effective_best_of();
  out.reserve(count);
  for (int i = 0; i < count; ++i) out.emplace_back(params, prompt, vocab_size, eos_token, seed, static_cast<uint64_t>(i));
  return out;
}

}  // namespace kvserve
