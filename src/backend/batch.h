// The batch descriptor: the one plain struct the engine hands a backend per step.
// CPU and CUDA backends run exactly this; nothing else crosses the seam.
#pragma once

#include <cstdint>
#include <vector>

namespace kvserve {

// One request's share of a flattened batch.
struct SequenceSlice {
  int32_t token_begin = 0;        // first index into BatchDescriptor::tokens
  int32_t num_tokens = 0;         // new tokens computed this step (a prefill chunk, or 1 for decode)
  int32_t context_len = 0;        // tokens already in the KV cache before this step
  int32_t block_table_begin = 0;  // first index into BatchDescriptor::block_tables
  int32_t num_blocks = 0;         // blocks in this request's table; covers context_len + num_tokens
};

struct BatchDescriptor {
  std::vector<int32_t> tokens;        // all new tokens, sequence after sequence
  std::vector<int32_t> positions;     // RoPE position of each new token
  std::vector<SequenceSlice> seqs;
  std::vector<int32_t> block_tables;  // physical block ids, per sequence, logical order
  // Rows of `tokens` whose logits the caller wants, in output order
  // (usually the last token of each sequence; every token for perplexity).
  std::vector<int32_t> logit_rows;

  // Token j of sequence s (absolute position p = context_len + j) is written to
  // physical block block_tables[block_table_begin + p / block_size], offset p % block_size.
};

}  // namespace kvserve
