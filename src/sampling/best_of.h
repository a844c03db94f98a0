// Choosing the n sequences returned out of best_of generated ones.
#pragma once

#include <span>
#include <vector>

namespace kvserve {

struct SequenceScore {
  int index = 0;                    // the sequence's stream / position in the request
  double cumulative_logprob = 0.0;  // sum of raw logprobs of its generated tokens
  int num_tokens = 0;               // generated tokens
};

enum class BestOfRanking {
  kCumulativeLogprob,  // vLLM's choice: highest total logprob
  kMeanLogprob,        // OpenAI's wording: highest logprob per token
};

// Indices (SequenceScore::index) of the n best, best first; ties go to the lower index.
// A sequence with no tokens scores 0 under kMeanLogprob.
// REQUIRES: 1 <= n <= scores.size().
std::vector<int> SelectBestSequences(std::span<const SequenceScore> scores, int n,
                                     BestOfRanking ranking = BestOfRanking::kCumulativeLogprob);

}  // namespace kvserve
