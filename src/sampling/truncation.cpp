#include "sampling/truncation.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "util/status.h"

namespace kvserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The k-th largest finite value of z (k >= 1), or -inf when fewer than k are finite.
float KthLargest(std::span<const float> logits, float inv_temp, size_t k, std::vector<float>& heap) {
  heap.clear();
  // Min-heap of the k largest so far; most values fail the first comparison.
  for (float l : logits) {
    const float z = l * inv_temp;
    if (!(z > kNegInf)) continue;  // -inf and NaN never survive
    if (heap.size() < k) {
      heap.push_back(z);
      std::push_heap(heap.begin(), heap.end(), std::greater<float>());
    } else if (z > heap.front()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
      heap.back() = z;
      std::push_heap(heap.begin(), heap.end(), std::greater<float>());
    }
  }
  return heap.size() < k ? kNegInf : heap.front();
}

bool Heavier(const WeightedToken& a, const WeightedToken& b) {
  return a.weight != b.weight ? a.weight > b.weight : a.token < b.token;
}

// Keeps the most likely candidates whose preceding mass is < top_p * total.
// Sorts only as much as needed: the kept set is usually small.
void ApplyTopP(std::vector<WeightedToken>& c, float top_p) {
  double total = 0.0;
  for (const auto& w : c) total += w.weight;
  const double limit = static_cast<double>(top_p) * total;
  const size_t n = c.size();
  size_t sorted = 0;
  size_t want = std::min<size_t>(n, 64);
  double mass = 0.0;
  while (true) {
    if (want < n) std::nth_element(c.begin() + sorted, c.begin() + want, c.end(), Heavier);
    std::sort(c.begin() + sorted, c.begin() + want, Heavier);
    for (; sorted < want; ++sorted) {
      if (mass >= limit) {
        c.resize(sorted);
        return;
      }
      mass += c[sorted].weight;
    }
    if (want == n) return;
    want = std::min(n, want * 4);
  }
}

}  // namespace

double BuildCandidates(std::span<const float> logits, const SamplingParams& params, SamplerWorkspace& ws) {
  KV_CHECK(!params.is_greedy());
  const float inv_temp = 1.0f / params.temperature;
  // Division by T is done as multiplication by 1/T; the rounding difference is
  // far below what any test or client can observe.
  float max_z = kNegInf;
  for (float l : logits) max_z = std::max(max_z, l * inv_temp);  // std::max drops NaN here
  ws.candidates.clear();
  if (!(max_z > kNegInf)) return 0.0;

  float threshold = kNegInf;
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < logits.size())
    threshold = KthLargest(logits, inv_temp, static_cast<size_t>(params.top_k), ws.heap);
  const float min_p = params.min_p;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float z = logits[i] * inv_temp;
    if (!(z > kNegInf) || z < threshold) continue;
    const float w = std::exp(z - max_z);
    if (w < min_p) continue;  // p / p_max = exp(z - max_z)
    ws.candidates.push_back({static_cast<int32_t>(i), w});
  }
  if (params.top_p < 1.0f) ApplyTopP(ws.candidates, params.top_p);
  double total = 0.0;
  for (const auto& w : ws.candidates) total += w.weight;
  return total;
}

int32_t DrawCandidate(std::span<const WeightedToken> candidates, double total, double u) {
  KV_CHECK(!candidates.empty() && total > 0.0);
  const double target = u * total;
  double acc = 0.0;
  for (const auto& c : candidates) {
    acc += c.weight;
    if (acc > target) return c.token;
  }
  // Rounding left target at the very end: the last candidate with weight.
  for (size_t i = candidates.size(); i-- > 0;)
    if (candidates[i].weight > 0.0f) return candidates[i].token;
  return candidates.back().token;
}

std::vector<TokenProb> SamplingDistribution(std::span<const float> logits, const SamplingParams& params) {
  SamplerWorkspace ws;
  const double total = BuildCandidates(logits, params, ws);
  std::vector<TokenProb> out;
  if (total <= 0.0) return out;
  for (const auto& c : ws.candidates) out.push_back({c.token, c.weight / total});
  std::sort(out.begin(), out.end(), [](const TokenProb& a, const TokenProb& b) { return a.token < b.token; });
  return out;
}

}  // namespace kvserve
