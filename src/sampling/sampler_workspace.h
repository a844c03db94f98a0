// Scratch memory for sampling one sequence at a time. The engine keeps one per
// sampling thread and reuses it across requests and steps, so per-request state
// stays small (no vocab-sized buffers per request).
#pragma once

#include <cstdint>
#include <vector>

namespace kvserve {

struct WeightedToken {
  int32_t token;
  float weight;  // unnormalized probability, exp(z - max z)
};

struct SamplerWorkspace {
  std::vector<float> logits;   // adjusted logits, one per vocab entry
  std::vector<float> clean;    // NaN-free copy of a row that had NaN
  // The distribution random sampling draws from: either every token, with
  // weights[i] for token i (dense), or the surviving candidates (sparse).
  bool dense = false;
  std::vector<float> weights;
  std::vector<double> block_sums;  // sums of weights per kExpBlock
  std::vector<WeightedToken> candidates;
  // Selection scratch: top-k heap, top-p histogram and crossing bucket.
  std::vector<float> heap;
  std::vector<float> block_max;
  std::vector<double> histogram;
  std::vector<uint32_t> histogram_count;
  std::vector<WeightedToken> boundary;
  std::vector<WeightedToken> kept;     // top-k/min-p survivors before top-p
  std::vector<WeightedToken> compact;  // dense survivors; grows only
};

}  // namespace kvserve
