#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sampling/logit_kernels.h"
#include "util/status.h"

namespace kvserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Orders by logprob descending, then id ascending; a heap with this comparator
// keeps the worst of the current top-N at its front.
bool Better(const TokenLogprob& a, const TokenLogprob& b) {
  return a.logprob != b.logprob ? a.logprob > b.logprob : a.token < b.token;
}

double LogSumExpWithMax(std::span<const float> logits, const MaxResult& mr) {
  if (!mr.has_nan) {
    if (std::isinf(mr.max)) return mr.max;  // no finite logit, or +inf dominates
    return mr.max + std::log(SumExp(logits, 1.0f, mr.max));
  }
  // Rare (a broken model output): skip NaN, in double precision.
  float m = kNegInf;
  for (float l : logits) m = std::max(m, l);
  if (std::isinf(m)) return m;
  double sum = 0.0;
  for (float l : logits) {
    if (l == l) sum += std::exp(static_cast<double>(l) - m);
  }
  return m + std::log(sum);
}

// The n best (logit, id) pairs, raw logits, best first.
void TopN(std::span<const float> logits, size_t n, bool has_nan, std::vector<float>& block_max,
          std::vector<TokenLogprob>& top) {
  top.clear();
  top.reserve(n);
  // Ids are visited in increasing order, so a value equal to the current worst
  // (the heap front) loses the id tie-break: `floor` rejects it in one compare.
  float floor = kNegInf;
  bool full = false;
  auto visit = [&](size_t i) {
    const float l = logits[i];
    if (l != l || (full && !(l > floor))) return;
    if (!full) {
      top.push_back({static_cast<int32_t>(i), l});
      std::push_heap(top.begin(), top.end(), Better);
      full = top.size() == n;
    } else {
      std::pop_heap(top.begin(), top.end(), Better);
      top.back() = {static_cast<int32_t>(i), l};
      std::push_heap(top.begin(), top.end(), Better);
    }
    if (full) floor = top.front().logprob;
  };
  if (has_nan) {
    for (size_t i = 0; i < logits.size(); ++i) visit(i);
  } else {
    // Skip whole blocks that cannot beat the current worst.
    BlockMaxima(logits, block_max);
    for (size_t b = 0; b < block_max.size(); ++b) {
      if (full && !(block_max[b] > floor)) continue;
      const size_t end = std::min(logits.size(), (b + 1) * kMaxBlock);
      for (size_t i = b * kMaxBlock; i < end; ++i) visit(i);
    }
  }
  std::sort(top.begin(), top.end(), Better);
}

}  // namespace

double LogSumExp(std::span<const float> logits) { return LogSumExpWithMax(logits, MaxLogit(logits)); }

LogprobInfo ComputeLogprobs(std::span<const float> logits, int32_t token, int top_n) {
  KV_CHECK(token >= 0 && static_cast<size_t>(token) < logits.size());
  KV_CHECK(top_n >= 0);
  const MaxResult mr = MaxLogit(logits);
  const double lse = LogSumExpWithMax(logits, mr);
  LogprobInfo info;
  const float lt = logits[token];
  info.logprob = static_cast<float>(lt - lse);
  int greater = 0;
  for (float l : logits) greater += l > lt ? 1 : 0;
  info.rank = greater + 1;

  const size_t n = std::min<size_t>(static_cast<size_t>(top_n), logits.size());
  if (n == 0) return info;
  std::vector<float> block_max;
  TopN(logits, n, mr.has_nan, block_max, info.top);
  for (auto& t : info.top) t.logprob = static_cast<float>(t.logprob - lse);
  return info;
}

}  // namespace kvserve
