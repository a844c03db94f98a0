#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/status.h"

namespace kvserve {
namespace {

// Orders by logprob descending, then id ascending; a heap with this comparator
// keeps the worst of the current top-N at its front.
bool Better(const TokenLogprob& a, const TokenLogprob& b) {
  return a.logprob != b.logprob ? a.logprob > b.logprob : a.token < b.token;
}

}  // namespace

double LogSumExp(std::span<const float> logits) {
  float m = -std::numeric_limits<float>::infinity();
  for (float l : logits) m = std::max(m, l);
  if (!(m > -std::numeric_limits<float>::infinity())) return m;
  if (std::isinf(m)) return m;  // +inf dominates
  double sum = 0.0;
  for (float l : logits) {
    if (l == l) sum += std::exp(static_cast<double>(l) - m);
  }
  return m + std::log(sum);
}

LogprobInfo ComputeLogprobs(std::span<const float> logits, int32_t token, int top_n) {
  KV_CHECK(token >= 0 && static_cast<size_t>(token) < logits.size());
  KV_CHECK(top_n >= 0);
  const double lse = LogSumExp(logits);
  LogprobInfo info;
  const float lt = logits[token];
  info.logprob = static_cast<float>(lt - lse);
  int greater = 0;
  for (float l : logits) greater += l > lt ? 1 : 0;
  info.rank = greater + 1;

  const size_t n = std::min<size_t>(static_cast<size_t>(top_n), logits.size());
  if (n == 0) return info;
  std::vector<TokenLogprob>& top = info.top;
  top.reserve(n);
  for (size_t i = 0; i < logits.size(); ++i) {
    const TokenLogprob cand{static_cast<int32_t>(i), logits[i]};
    if (logits[i] != logits[i]) continue;  // NaN
    if (top.size() < n) {
      top.push_back(cand);
      std::push_heap(top.begin(), top.end(), Better);
    } else if (Better(cand, top.front())) {
      std::pop_heap(top.begin(), top.end(), Better);
      top.back() = cand;
      std::push_heap(top.begin(), top.end(), Better);
    }
  }
  std::sort(top.begin(), top.end(), Better);
  for (auto& t : top) t.logprob = static_cast<float>(t.logprob - lse);
  return info;
}

}  // namespace kvserve
