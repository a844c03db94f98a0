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

// A Q8_0 row of n elements in the kQ8_0Rows layout (scales, then values).
// REQUIRES: n % 32 == 0; src and dst do not overlap.
void SplitQ8_0Row(const void* src, void* dst, int64_t n);

// REQUIRES: n is a multiple of the type's block size.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);
// REQUIRES: n is a multiple of the type's block size; type is not a K-quant.
void QuantizeRow(DType type, const float* src, void* dst, int64_t n);

}  // namespace kvserve
