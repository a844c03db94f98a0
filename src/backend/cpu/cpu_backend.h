// The CPU backend: a Llama-family forward pass over a flattened, mixed
// prefill/decode batch, reading and writing K/V only through block tables.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "model/model.h"

namespace kvserve {

struct CpuBackendConfig {
  KvCacheConfig kv;
  int num_threads = 2;
  enum class Precision {
    kReference,  // float32 weights (dequantized row by row), double accumulators: the careful path
    kFast,       // weights in file precision, SIMD dot products, Q8 activations for Q8_0/Q4_0
  } precision = Precision::kFast;
};

// REQUIRES: model outlives the backend. Errors: unsupported KV dtype, bad sizes.
StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const Model& model, const CpuBackendConfig& config);

}  // namespace kvserve
