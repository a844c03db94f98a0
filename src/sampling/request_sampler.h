// The sampling state of one sequence (one of a request's n / best_of samples),
// and the per-step entry point the engine calls with that sequence's logits.
//
// Per step, Sample() runs:
//   1. raw logprobs (if wanted): log_softmax of the unprocessed logits (see logprobs.h)
//   2. logit adjustments: min_tokens bans, logit_bias, repetition, frequency,
//      presence penalties (logit_adjust.h)
//   3. greedy: argmax (lowest id on ties); otherwise temperature -> min_p ->
//      top_k -> top_p -> one draw (truncation.h). This is vLLM v1's order.
//   4. bookkeeping: history for penalties, cumulative logprob, finish reason.
//
// Randomness: draw i of a sequence is Philox(seed, stream, i) (philox.h), so a
// fixed seed reproduces the same tokens whatever the batch composition, the
// order the engine visits sequences, or preemption. Greedy steps consume draw
// indices too (index = generated-token count), so streams never shift.
//
// Threading: a RequestSampler belongs to one sequence and a SamplerWorkspace to
// one thread; neither is synchronized. Sampling different sequences on
// different threads (each with its own workspace) is safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sampling/best_of.h"
#include "sampling/logprobs.h"
#include "sampling/philox.h"
#include "sampling/sampler_workspace.h"
#include "sampling/sampling_params.h"
#include "sampling/seed_source.h"
#include "sampling/token_history.h"
#include "util/status.h"

namespace kvserve {

enum class FinishReason {
  kNone,    // keep generating
  kStop,    // EOS (unless ignore_eos) or a stop token id was sampled
  kLength,  // max_tokens reached
};

struct SampleResult {
  int32_t token = -1;
  // Raw logprob of `token`; computed when params.logprobs is set or best_of > n,
  // otherwise NaN.
  float logprob = 0.0f;
  // Set when params.logprobs is set: the token's rank and the top-N entries.
  std::optional<LogprobInfo> logprobs;
  FinishReason finish = FinishReason::kNone;
  // The stop token id that ended generation (EOS or one of stop_token_ids).
  std::optional<int32_t> stop_token;
};

class RequestSampler {
 public:
  // `seed` is the request's seed (params.seed or one drawn by ResolveSeed);
  // `stream` tells apart the sequences of one request (0 .. best_of-1).
  // REQUIRES: params.Validate(vocab_size).ok(); eos_token (if any) < vocab_size.
  RequestSampler(const SamplingParams& params, std::span<const int32_t> prompt, int vocab_size,
                 std::optional<int32_t> eos_token, uint64_t seed, uint64_t stream);

  // Samples the next token from `logits` (the model's raw output for this
  // sequence, vocab_size entries) and records it. InvalidArgument if every
  // token is excluded (e.g. logit_bias bans them all) or no logit is finite.
  // REQUIRES: finished() is false.
  StatusOr<SampleResult> Sample(std::span<const float> logits, SamplerWorkspace& ws);

  int num_generated() const { return num_generated_; }
  // Sum of the raw logprobs of the generated tokens (0 when not tracked).
  double cumulative_logprob() const { return cumulative_logprob_; }
  bool tracks_logprobs() const { return want_logprob_; }
  // For SelectBestSequences (index = stream).
  SequenceScore score() const { return {static_cast<int>(rng_.stream()), cumulative_logprob_, num_generated_}; }
  bool finished() const { return finished_; }
  uint64_t seed() const { return rng_.seed(); }
  uint64_t stream() const { return rng_.stream(); }
  const SamplingParams& params() const { return params_; }

 private:
  bool NeedsAdjustment() const;
  void CollectBans(std::vector<int32_t>& bans) const;

  SamplingParams params_;
  int vocab_size_;
  std::optional<int32_t> eos_token_;
  SequenceRng rng_;
  TokenHistory history_;
  bool want_logprob_;
  int num_generated_ = 0;
  double cumulative_logprob_ = 0.0;
  bool finished_ = false;
};

// params.seed if set, else a fresh one from `source`. Call once per request;
// all its sequences share the seed and differ by stream.
uint64_t ResolveSeed(const SamplingParams& params, SeedSource& source);

// The best_of samplers of one request (streams 0 .. best_of-1).
// REQUIRES: params.Validate(vocab_size).ok().
std::vector<RequestSampler> MakeSequenceSamplers(const SamplingParams& params, std::span<const int32_t> prompt,
                                                 int vocab_size, std::optional<int32_t> eos_token,
                                                 SeedSource& source);

}  // namespace kvserve
