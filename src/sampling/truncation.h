// Stage 2 of random sampling, in vLLM v1's order:
//   temperature (z = logit / T) -> min_p -> top_k -> top_p -> draw.
// min_p keeps tokens with p >= min_p * p_max; top_k keeps the k largest
// (and anything tied with the k-th); top_p then keeps, over the renormalized
// survivors in descending order, each token whose preceding mass is < top_p
// (the smallest prefix reaching top_p). min_p and top_k commute (both keep an
// upper set of logits); top_p after them sees their renormalized distribution,
// which is where v1 differs from vLLM v0 (top_k -> top_p -> min_p).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/sampler_workspace.h"
#include "sampling/sampling_params.h"

namespace kvserve {

// Fills ws.candidates with the surviving tokens and their weights exp(z - max z);
// returns the total weight, or 0 when no logit is finite (nothing can be sampled).
// REQUIRES: !params.is_greedy().
double BuildCandidates(std::span<const float> logits, const SamplingParams& params, SamplerWorkspace& ws);

// Picks from ws.candidates by inverse CDF: the first candidate whose running
// weight exceeds u * total. REQUIRES: total > 0, u in [0, 1).
int32_t DrawCandidate(std::span<const WeightedToken> candidates, double total, double u);

struct TokenProb {
  int32_t token;
  double prob;
};

// The normalized distribution random sampling would draw from, sorted by token
// id (for tests and debugging; the hot path uses BuildCandidates directly).
std::vector<TokenProb> SamplingDistribution(std::span<const float> logits, const SamplingParams& params);

}  // namespace kvserve
