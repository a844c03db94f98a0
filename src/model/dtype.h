// Tensor element types as stored in model files (GGUF numbering where it has one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvserve {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,  // blocks of 32: f16 scale + 32 x int8
  kQ4_0,  // blocks of 32: f16 scale + 16 bytes of 4-bit values (offset 8)
  kQ4_K,  // super-blocks of 256 (optional)
  kQ6_K,  // super-blocks of 256 (optional)
  // Q8_0 values with each row re-laid out for SIMD decode: chunks of up to 32 blocks,
  // each chunk's fp16 scales, then its int8 values (model/quant.h). Same bytes per row
  // as Q8_0, so RowBytes and row addressing hold, but a row is not a run of blocks.
  // Made in memory from Q8_0 (SplitQ8_0Rows in model/weight_memory.h); never read from
  // or written to a file.
  kQ8_0Rows,
};

struct DTypeInfo {
  std::string_view name;
  int block_elems;   // elements per quantization block (1 for plain floats)
  int block_bytes;   // bytes per block
};

const DTypeInfo& GetDTypeInfo(DType t);

// Bytes of a row of `n` elements. REQUIRES: n % block_elems == 0.
size_t RowBytes(DType t, int64_t n);

}  // namespace kvserve
