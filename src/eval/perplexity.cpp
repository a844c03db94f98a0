#include "eval/perplexity.h"

#include <fmt/format.h>

#include <cmath>

namespace kvserve {

StatusOr<PerplexityResult> ComputePerplexity(Backend& backend, const Model& model, std::span<const int32_t> tokens,
                                             const PerplexityOptions& o) {
  if (o.ctx < 4) return Status::InvalidArgument(fmt::format("perplexity context must be >= 4, got {}", o.ctx));
  const int bs = backend.kv_config().block_size;
  const int blocks = (o.ctx + bs - 1) / bs;
  if (blocks > backend.kv_config().num_blocks)
    return Status::InvalidArgument(fmt::format("the KV cache holds {} blocks; context {} needs {}", backend.kv_config().num_blocks, o.ctx, blocks));
  int n_chunks = static_cast<int>(tokens.size() / o.ctx);
  if (o.max_chunks > 0) n_chunks = std::min(n_chunks, o.max_chunks);
  if (n_chunks == 0)
    return Status::InvalidArgument(fmt::format("the text has {} tokens, fewer than one context of {}", tokens.size(), o.ctx));
  const int V = model.config.vocab_size;
  const int first_scored = o.ctx / 2;  // logits at first_scored .. ctx-2 predict tokens first_scored+1 .. ctx-1

  PerplexityResult res;
  BatchDescriptor b;
  std::vector<float> logits;
  for (int c = 0; c < n_chunks; ++c) {
    const int32_t* chunk = tokens.data() + static_cast<size_t>(c) * o.ctx;
    b.tokens.assign(chunk, chunk + o.ctx);
    if (o.bos_id >= 0) b.tokens[0] = o.bos_id;
    b.positions.resize(o.ctx);
    for (int i = 0; i < o.ctx; ++i) b.positions[i] = i;
    b.block_tables.resize(blocks);
    for (int i = 0; i < blocks; ++i) b.block_tables[i] = i;
    b.seqs = {SequenceSlice{0, o.ctx, 0, 0, blocks}};
    b.logit_rows.clear();
    for (int i = first_scored; i < o.ctx - 1; ++i) b.logit_rows.push_back(i);
    logits.resize(b.logit_rows.size() * static_cast<size_t>(V));
    KV_RETURN_IF_ERROR(backend.Forward(b, logits));
    for (size_t r = 0; r < b.logit_rows.size(); ++r) {
      const float* l = logits.data() + r * V;
      double mx = -INFINITY;
      for (int i = 0; i < V; ++i) mx = std::max<double>(mx, l[i]);
      double sum = 0;
      for (int i = 0; i < V; ++i) sum += std::exp(l[i] - mx);
      const int32_t target = chunk[b.logit_rows[r] + 1];
      res.nll_sum += -(l[target] - mx - std::log(sum));
      res.scored_tokens++;
    }
    res.chunks++;
    res.cumulative_ppl.push_back(std::exp(res.nll_sum / res.scored_tokens));
  }
  res.ppl = res.cumulative_ppl.back();
  return res;
}

}  // namespace kvserve
