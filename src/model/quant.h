// Scalar reference conversions between float32 and the file precisions
// (ggml block layouts: Q8_0 = f16 scale + 32 x int8; Q4_0 = f16 scale + 16 bytes,
// low nibbles are elements 0..15, high nibbles 16..31, value = (q - 8) * d).
#pragma once

#include <cstdint>
#include <cstring>

#include "model/dtype.h"

namespace kvserve {

float Fp16ToFloat(uint16_t h);
uint16_t FloatToFp16(float f);  // round to nearest even

inline float Bf16ToFloat(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t FloatToBf16(float f);  // round to nearest even, NaN preserved

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);

// The kQ8_0Rows layout: a row of nb = n / 32 blocks is a run of chunks of up to 32
// blocks (1,024 values); a chunk holds its blocks' fp16 scales, then their int8 values.
// A full chunk is 1,088 bytes, the bytes of its 32 Q8_0 blocks: one 64-byte line of
// scales, then sixteen lines of values, so a row of any length is read as one forward
// stream (scales ahead of the values they scale, where the hardware prefetcher runs),
// and a row starting on a line keeps every full chunk's values on lines.
constexpr int64_t kQ8_0RowsChunkBlocks = 32;
constexpr size_t kQ8_0RowsChunkBytes = kQ8_0RowsChunkBlocks * sizeof(BlockQ8_0);
// Byte offset of block b's fp16 scale in a row (the same at any row length).
inline size_t Q8_0RowsScaleOffset(int64_t b) {
  return static_cast<size_t>(b / kQ8_0RowsChunkBlocks) * kQ8_0RowsChunkBytes + 2 * static_cast<size_t>(b % kQ8_0RowsChunkBlocks);
}
// Byte offset of block b's 32 values in a row of nb blocks.
inline size_t Q8_0RowsValuesOffset(int64_t nb, int64_t b) {
  const int64_t chunk_first = b - b % kQ8_0RowsChunkBlocks;
  const int64_t chunk_blocks = nb - chunk_first < kQ8_0RowsChunkBlocks ? nb - chunk_first : kQ8_0RowsChunkBlocks;
  return static_cast<size_t>(chunk_first) * sizeof(BlockQ8_0) + 2 * static_cast<size_t>(chunk_blocks) + 32 * static_cast<size_t>(b - chunk_first);
}

// A Q8_0 row of n elements in the kQ8_0Rows layout.
// REQUIRES: n % 32 == 0; src and dst do not overlap.
void SplitQ8_0Row(const void* src, void* dst, int64_t n);

// REQUIRES: n is a multiple of the type's block size.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);
// REQUIRES: n is a multiple of the type's block size; type is not a K-quant.
void QuantizeRow(DType type, const float* src, void* dst, int64_t n);

}  // namespace kvserve
