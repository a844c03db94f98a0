// Vectorized passes over one vocab-sized row of logits (Highway, with runtime
// dispatch to the best SIMD target of the machine). At vocab 152k these passes
// are most of the sampler's cost, so they are kept here, small and separate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kvserve {

// exp() arguments below this count as exactly 0: their true weight (< 1.7e-38
// relative to the most likely token) is below float resolution anyway, and an
// exact 0 keeps -inf (banned) tokens impossible to draw.
inline constexpr float kMinExpArg = -87.0f;
// Granularity of ExpWeights' block sums (lets a draw skip whole blocks).
inline constexpr size_t kExpBlock = 1024;

struct MaxResult {
  float max;      // -inf for an empty row; meaningless when has_nan
  bool has_nan;
};
MaxResult MaxLogit(std::span<const float> x);

// sum_i w_i with w_i = exp(x_i * scale - offset), 0 below kMinExpArg.
double SumExp(std::span<const float> x, float scale, float offset);

// Writes w_i (as in SumExp) to out, the sums of consecutive kExpBlock-sized
// blocks to block_sums, and returns the total. REQUIRES: out.size() == x.size().
double ExpWeights(std::span<const float> x, float scale, float offset, std::span<float> out,
                  std::vector<double>& block_sums);

// Maxima of consecutive kMaxBlock-sized blocks of x, so top-k style scans can
// skip whole blocks below their current floor. out gets ceil(n / kMaxBlock)
// entries. REQUIRES: x has no NaN.
inline constexpr size_t kMaxBlock = 64;
void BlockMaxima(std::span<const float> x, std::vector<float>& out);

// The same weight for one value (scalar path, same clamping).
float ExpWeight(float x, float scale, float offset);

}  // namespace kvserve
