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
  std::vector<float> logits;               // adjusted logits, one per vocab entry
  std::vector<WeightedToken> candidates;   // the distribution random sampling draws from
  std::vector<float> heap;                 // top-k selection
};

}  // namespace kvserve
