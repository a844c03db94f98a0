#include "sampling/truncation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "sampling/logit_kernels.h"
#include "util/status.h"

namespace kvserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();

// Positive floats order like their bit patterns; the top 13 bits (exponent and
// 4 mantissa bits) give 16 monotone buckets per power of two.
constexpr int kBucketShift = 19;
constexpr size_t kNumBuckets = size_t{1} << (32 - kBucketShift - 1);  // sign bit is 0

inline size_t Bucket(float w) {
  uint32_t bits;
  std::memcpy(&bits, &w, sizeof(bits));
  return bits >> kBucketShift;
}

// The k-th largest finite logit (k >= 1), or -inf when fewer than k are finite.
// REQUIRES: no NaN in logits.
float KthLargest(std::span<const float> logits, size_t k, SamplerWorkspace& ws) {
  std::vector<float>& heap = ws.heap;
  heap.clear();
  // Min-heap of the k largest so far; `floor` caches its front, and whole
  // blocks whose maximum is not above it are skipped.
  BlockMaxima(logits, ws.block_max);
  float floor = kNegInf;
  for (size_t b = 0; b < ws.block_max.size(); ++b) {
    if (!(ws.block_max[b] > floor)) continue;
    const size_t end = std::min(logits.size(), (b + 1) * kMaxBlock);
    for (size_t i = b * kMaxBlock; i < end; ++i) {
      const float l = logits[i];
      if (!(l > floor)) continue;
      if (heap.size() < k) {
        heap.push_back(l);
        std::push_heap(heap.begin(), heap.end(), std::greater<float>());
        if (heap.size() == k) floor = heap.front();
      } else {
        std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
        heap.back() = l;
        std::push_heap(heap.begin(), heap.end(), std::greater<float>());
        floor = heap.front();
      }
    }
  }
  return heap.size() < k ? kNegInf : heap.front();
}

bool Heavier(const WeightedToken& a, const WeightedToken& b) {
  return a.weight != b.weight ? a.weight > b.weight : a.token < b.token;
}

// Top-p over (token, weight) pairs produced by `for_each(visit)`: appends to
// `out` the pairs whose preceding mass (in descending weight order) is
// < top_p * total. Buckets weights by their float bits, then sorts only the
// bucket where the cumulative mass crosses the limit: two linear passes.
// `set_total` is the total weight of the whole candidate set when for_each
// visits only part of it (the part that can survive), else 0.
template <typename ForEach>
void SelectTopP(ForEach for_each, float top_p, double set_total, SamplerWorkspace& ws,
                std::vector<WeightedToken>& out) {
  std::vector<double>& hist = ws.histogram;
  std::vector<uint32_t>& count = ws.histogram_count;
  hist.assign(kNumBuckets, 0.0);
  count.assign(kNumBuckets, 0);
  double total = 0.0;
  for_each([&](int32_t, float w) {
    const size_t b = Bucket(w);
    hist[b] += w;
    ++count[b];
    total += w;
  });
  if (set_total > 0.0) total = set_total;
  const double limit = static_cast<double>(top_p) * total;
  double before = 0.0;  // mass of all buckets above the crossing one
  size_t cut = 0;       // rounding may leave the limit unreached: keep everything
  size_t num_above = 0;
  for (size_t b = kNumBuckets; b-- > 0;) {
    if (before + hist[b] >= limit) {
      cut = b;
      break;
    }
    before += hist[b];
    num_above += count[b];
  }
  // Branch-free partition (the bucket tests are unpredictable on real data):
  // every pair is written to both outputs, and each cursor advances only when
  // the pair belongs there. One slack slot each absorbs the last write.
  std::vector<WeightedToken>& boundary = ws.boundary;
  const size_t base = out.size();
  out.resize(base + num_above + 1);
  boundary.resize(count[cut] + 1);
  WeightedToken* above = out.data() + base;
  WeightedToken* edge = boundary.data();
  size_t na = 0, ne = 0;
  for_each([&](int32_t t, float w) {
    const size_t b = Bucket(w);
    above[na] = {t, w};
    edge[ne] = {t, w};
    na += b > cut ? 1 : 0;
    ne += b == cut ? 1 : 0;
  });
  KV_CHECK(na == num_above && ne == count[cut]);
  out.resize(base + na);
  boundary.resize(ne);
  std::sort(boundary.begin(), boundary.end(), Heavier);
  for (const auto& t : boundary) {
    if (before >= limit) break;
    before += t.weight;
    out.push_back(t);
  }
}

int32_t DrawDense(std::span<const float> w, std::span<const double> block_sums, double total, double u) {
  const double target = u * total;
  double acc = 0.0;
  for (size_t b = 0; b < block_sums.size(); ++b) {
    if (acc + block_sums[b] <= target && b + 1 < block_sums.size()) {
      acc += block_sums[b];
      continue;
    }
    const size_t begin = b * kExpBlock, end = std::min(w.size(), begin + kExpBlock);
    int32_t last = -1;
    for (size_t i = begin; i < end; ++i) {
      if (w[i] <= 0.0f) continue;
      acc += w[i];
      last = static_cast<int32_t>(i);
      if (acc > target) return last;
    }
    // Block sums and the running sum round differently: stay in this block.
    if (last >= 0) return last;
  }
  for (size_t i = w.size(); i-- > 0;)
    if (w[i] > 0.0f) return static_cast<int32_t>(i);
  KV_CHECK_MSG(false, "DrawDense: no token with positive weight");
  return -1;
}

}  // namespace

double BuildDistribution(std::span<const float> logits, const SamplingParams& params, SamplerWorkspace& ws) {
  KV_CHECK(!params.is_greedy());
  ws.dense = false;
  ws.candidates.clear();
  MaxResult mr = MaxLogit(logits);
  if (mr.has_nan) {
    ws.clean.assign(logits.begin(), logits.end());
    for (float& l : ws.clean)
      if (l != l) l = kNegInf;
    logits = ws.clean;
    mr = MaxLogit(logits);
  }
  if (!(mr.max > kNegInf)) return 0.0;
  if (mr.max == kPosInf) {
    // Degenerate row: the +inf tokens share all the mass.
    for (size_t i = 0; i < logits.size(); ++i)
      if (logits[i] == kPosInf) ws.candidates.push_back({static_cast<int32_t>(i), 1.0f});
    return static_cast<double>(ws.candidates.size());
  }

  // z = logit / T is computed as logit * (1/T): monotone, so the max and the
  // k-th largest of z are those of the logits, scaled.
  const float inv_temp = 1.0f / params.temperature;
  const float max_z = mr.max * inv_temp;
  const float min_p = params.min_p;
  const bool top_p_on = params.top_p < 1.0f;
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < logits.size()) {
    const float kth_z = KthLargest(logits, static_cast<size_t>(params.top_k), ws) * inv_temp;
    std::vector<WeightedToken>& dst = top_p_on ? ws.kept : ws.candidates;
    dst.clear();
    for (size_t i = 0; i < logits.size(); ++i) {
      if (!(logits[i] * inv_temp >= kth_z)) continue;
      const float w = ExpWeight(logits[i], inv_temp, max_z);
      if (w > 0.0f && w >= min_p) dst.push_back({static_cast<int32_t>(i), w});  // w = p / p_max
    }
    if (top_p_on) {
      SelectTopP(
          [&](auto&& visit) {
            for (const auto& c : ws.kept) visit(c.token, c.weight);
          },
          params.top_p, 0.0, ws, ws.candidates);
    }
  } else {
    ws.weights.resize(logits.size());
    const double total = ExpWeights(logits, inv_temp, max_z, ws.weights, ws.block_sums);
    if (min_p <= 0.0f && !top_p_on) {
      ws.dense = true;
      return total;
    }
    // Top-p alone can skip tokens lighter than eps = (1 - top_p) * total / (2 V):
    // together they weigh at most half of 1 - top_p, so the cumulative mass
    // before the first of them is already past top_p and top-p drops them all.
    float lo = min_p;
    double set_total = 0.0;
    if (top_p_on && min_p <= 0.0f) {
      lo = static_cast<float>(0.5 * (1.0 - params.top_p) * total / static_cast<double>(logits.size()));
      set_total = total;
    }
    // Compact the survivors branch-free (which tokens pass is unpredictable):
    // write every token, advance the cursor only for those that pass. The
    // buffer only grows, so no per-call clearing of a vocab-sized array.
    if (ws.compact.size() < logits.size() + 1) ws.compact.resize(logits.size() + 1);
    WeightedToken* buf = ws.compact.data();
    size_t n = 0;
    const float floor = lo > 0.0f ? lo : std::numeric_limits<float>::denorm_min();
    for (size_t i = 0; i < ws.weights.size(); ++i) {
      const float w = ws.weights[i];
      buf[n] = {static_cast<int32_t>(i), w};
      n += w >= floor ? 1 : 0;
    }
    if (top_p_on) {
      SelectTopP(
          [&](auto&& visit) {
            for (size_t i = 0; i < n; ++i) visit(buf[i].token, buf[i].weight);
          },
          params.top_p, set_total, ws, ws.candidates);
    } else {
      ws.candidates.assign(buf, buf + n);
    }
  }
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

int32_t DrawToken(const SamplerWorkspace& ws, double total, double u) {
  KV_CHECK(total > 0.0);
  if (ws.dense) return DrawDense(ws.weights, ws.block_sums, total, u);
  return DrawCandidate(ws.candidates, total, u);
}

std::vector<TokenProb> SamplingDistribution(std::span<const float> logits, const SamplingParams& params) {
  SamplerWorkspace ws;
  const double total = BuildDistribution(logits, params, ws);
  std::vector<TokenProb> out;
  if (total <= 0.0) return out;
  if (ws.dense) {
    for (size_t i = 0; i < ws.weights.size(); ++i)
      if (ws.weights[i] > 0.0f) out.push_back({static_cast<int32_t>(i), ws.weights[i] / total});
  } else {
    for (const auto& c : ws.candidates) out.push_back({c.token, c.weight / total});
  }
  std::sort(out.begin(), out.end(), [](const TokenProb& a, const TokenProb& b) { return a.token < b.token; });
  return out;
}

}  // namespace kvserve
