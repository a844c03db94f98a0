// Perplexity exactly as llama-perplexity computes it: the token stream (BOS first)
// is cut into consecutive chunks of ctx tokens (a short tail is dropped), each chunk
// starts from an empty KV cache with its first token replaced by BOS, and only the
// second half of each chunk is scored (every scored token sees >= ctx/2 context).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace kvserve {

struct PerplexityOptions {
  int ctx = 512;
  int32_t bos_id = 1;   // replaces the first token of every chunk (-1: keep it)
  int max_chunks = 0;   // 0 = all
};

struct PerplexityResult {
  double ppl = 0;
  double nll_sum = 0;
  int64_t scored_tokens = 0;
  int chunks = 0;
  std::vector<double> cumulative_ppl;  // after each chunk
};

// REQUIRES: backend's KV pool holds ctx tokens (num_blocks * block_size >= ctx).
StatusOr<PerplexityResult> ComputePerplexity(Backend& backend, const Model& model, std::span<const int32_t> tokens,
                                             const PerplexityOptions& options);

}  // namespace kvserve
