// The CPU backend: a Llama-family forward pass over a flattened, mixed
// prefill/decode batch, reading and writing K/V only through block tables.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "model/model.h"

namespace kvserve {

// Where forward passes spend their wall time, phase by phase, summed over passes (for
// benchmarks: decode_bench --phases shows which part of a decode step falls short of
// the bandwidth limit). Written by Forward only when a CpuBackendConfig points at one.
struct CpuForwardProfile {
  enum Phase {
    kEmbedAndNorms,  // buffers, embedding rows, the per-layer RMS norms, biases and q/k norms
    kQkv,            // the Q, K and V products
    kRopeAndKvWrite, // rotary embedding, the new tokens' K and V into their blocks
    kAttention,
    kAttentionOut,   // the output projection (and residual)
    kMlpGateUp,      // gate and up products with the SwiGLU activation
    kMlpDown,        // the down product (and residual)
    kLogits,         // final norm and output products of the logit rows
    kNumPhases
  };
  static const char* Name(int phase);
  double seconds[kNumPhases] = {};
  int64_t passes = 0;
};

struct CpuBackendConfig {
  KvCacheConfig kv;
  int num_threads = 2;
  enum class Precision {
    kReference,  // float32 weights (dequantized row by row), double accumulators: the careful path
    kFast,       // weights in file precision, SIMD dot products, Q8 activations for Q8_0/Q4_0
  } precision = Precision::kFast;
  // kFast's kernel set; nullptr: BestDotKernels(). Not owned. Every set reads every
  // weight layout, so benchmarks can run two sets over the same prepared weights.
  const DotKernels* kernels = nullptr;
  // Not owned; when set, every Forward adds its phases' wall time to it.
  CpuForwardProfile* profile = nullptr;
};

// REQUIRES: model outlives the backend. Errors: unsupported KV dtype, bad sizes.
// Re-lays out weights already copied out of the file mapping (CopyWeightsToHugePages)
// where `kernels` read another layout of the same values faster: Q8_0 becomes
// kQ8_0Rows for a set that prefers it (the AVX-512 one). Weights still read from the
// mapping are left as they are. Any kernel set computes the same products either way.
void PrepareWeightsForCpu(Model& m, const DotKernels& kernels);

StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const Model& model, const CpuBackendConfig& config);

}  // namespace kvserve
