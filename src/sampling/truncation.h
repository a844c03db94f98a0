// Stage 2 of random sampling, in vLLM v1's order:
//   temperature (z = logit / T) -> min_p -> top_k -> top_p -> draw.
// min_p keeps tokens with p >= min_p * p_max; top_k keeps the k largest
// (and anything tied with the k-th); top_p then keeps, over the renormalized
// survivors in descending order, each token whose preceding mass is < top_p
// (the smallest prefix reaching top_p). min_p and top_k commute (both keep an
// upper set of logits); top_p after them sees their renormalized distribution,
// which is where v1 differs from vLLM v0 (top_k -> top_p -> min_p).
//
// Cost at vocab 152k: one vectorized max pass and one vectorized exp pass;
// top_k adds a heap pass, top_p a histogram over float exponent bits (linear,
// no full sort; only the bucket where the cumulative mass crosses top_p is
// sorted).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/sampler_workspace.h"
#include "sampling/sampling_params.h"

namespace kvserve {

// Fills ws (dense weights or sparse candidates) with the distribution to draw
// from and returns its total weight; 0 when no token can be drawn (no finite
// logit). NaN logits are treated as -inf. REQUIRES: !params.is_greedy().
double BuildDistribution(std::span<const float> logits, const SamplingParams& params, SamplerWorkspace& ws);

// Inverse-CDF draw from what BuildDistribution left in ws: the first token
// whose running weight exceeds u * total. REQUIRES: total > 0, u in [0, 1).
int32_t DrawToken(const SamplerWorkspace& ws, double total, double u);

// The same draw over an explicit candidate list.
int32_t DrawCandidate(std::span<const WeightedToken> candidates, double total, double u);

struct TokenProb {
  int32_t token;
  double prob;
};

// The normalized distribution random sampling would draw from, tokens with
// probability 0 omitted, sorted by token id (tests and debugging).
std::vector<TokenProb> SamplingDistribution(std::span<const float> logits, const SamplingParams& params);

}  // namespace kvserve
