#include "sampling/best_of.h"

#include <algorithm>

#include "util/status.h"

namespace kvserve {

std::vector<int> SelectBestSequences(std::span<const SequenceScore> scores, int n, BestOfRanking ranking) {
  KV_CHECK(n >= 1 && static_cast<size_t>(n) <= scores.size());
  auto key = [ranking](const SequenceScore& s) {
    if (ranking == BestOfRanking::kCumulativeLogprob) return s.cumulative_logprob;
    return s.num_tokens > 0 ? s.cumulative_logprob / s.num_tokens : 0.0;
  };
  std::vector<SequenceScore> sorted(scores.begin(), scores.end());
  std::stable_sort(sorted.begin(), sorted.end(), [&](const SequenceScore& a, const SequenceScore& b) {
    const double ka = key(a), kb = key(b);
    return ka != kb ? ka > kb : a.index < b.index;
  });
  std::vector<int> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(sorted[i].index);
  return out;
}

}  // namespace kvserve
