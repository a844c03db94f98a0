// Reference conversions: exact known values, exhaustive half-precision round trips,
// ggml block layouts decoded independently, and quantization error bounds.
#include "model/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace kvserve {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(Fp16ToFloat(0x3C00), 1.0f);
  EXPECT_EQ(Fp16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(Fp16ToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(Fp16ToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(Fp16ToFloat(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(Fp16ToFloat(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(Fp16ToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Fp16ToFloat(0x7E00)));
  EXPECT_TRUE(std::signbit(Fp16ToFloat(0x8000)));

  EXPECT_EQ(FloatToFp16(1.0f), 0x3C00);
  EXPECT_EQ(FloatToFp16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToFp16(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(FloatToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToFp16(65519.0f), 0x7BFF);  // below the rounding midpoint
  EXPECT_EQ(FloatToFp16(65520.0f), 0x7C00);  // midpoint rounds to even = overflow
  EXPECT_EQ(FloatToFp16(1e10f), 0x7C00);
  EXPECT_EQ(FloatToFp16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(FloatToFp16(std::nanf("")) & 0x7C00, 0x7C00);
  EXPECT_NE(FloatToFp16(std::nanf("")) & 0x03FF, 0);
}

TEST(Fp16, RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -10);
  EXPECT_EQ(FloatToFp16(1.0f + ulp / 2), 0x3C00);       // tie -> even (down)
  EXPECT_EQ(FloatToFp16(1.0f + 3 * ulp / 2), 0x3C02);   // tie -> even (up)
  EXPECT_EQ(FloatToFp16(1.0f + ulp / 2 + 1e-6f), 0x3C01);
  // Subnormal range: units of 2^-24.
  EXPECT_EQ(FloatToFp16(std::ldexp(1.0f, -25)), 0x0000);      // tie -> 0
  EXPECT_EQ(FloatToFp16(std::ldexp(3.0f, -25)), 0x0002);      // tie -> 2
  EXPECT_EQ(FloatToFp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToFp16(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(FloatToFp16(-std::ldexp(1023.0f, -24)), 0x83FF);
  // Largest subnormal + half an ulp rounds up into the normals.
  EXPECT_EQ(FloatToFp16(std::ldexp(1023.5f, -24)), 0x0400);
}

TEST(Fp16, EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = Fp16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToFp16(f), h) << std::hex << h;
  }
}

TEST(Bf16, KnownValuesAndRounding) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16(-2.0f), 0xC000);
  EXPECT_EQ(Bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(FloatToBf16(FromBits(0x3F808000)), 0x3F80);  // tie -> even (down)
  EXPECT_EQ(FloatToBf16(FromBits(0x3F818000)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(FloatToBf16(FromBits(0x3F808001)), 0x3F81);
  EXPECT_EQ(FloatToBf16(FromBits(0x7F7FFFFF)), 0x7F80);  // max float rounds to inf
  const uint16_t nan = FloatToBf16(FromBits(0x7F800001));  // payload only in the low bits
  EXPECT_TRUE(std::isnan(Bf16ToFloat(nan)));
}

TEST(Bf16, EveryValueRoundTrips) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = Bf16ToFloat(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToBf16(f), b) << std::hex << b;
  }
}

TEST(Q8_0, DequantizesKnownBlock) {
  BlockQ8_0 b[2];
  b[0].d = 0x3C00;  // 1.0
  b[1].d = 0xB800;  // -0.5
  for (int j = 0; j < 32; ++j) {
    b[0].qs[j] = static_cast<int8_t>(j * 8 - 128);
    b[1].qs[j] = static_cast<int8_t>(127 - j);
  }
  float out[64];
  DequantizeRow(DType::kQ8_0, b, out, 64);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(out[j], j * 8 - 128.0f);
    EXPECT_EQ(out[32 + j], -0.5f * (127 - j));
  }
}

TEST(Q8_0, QuantizesLikeGgml) {
  // Block of -16..15: amax 16, d = 16/127, q = round(x * 127 / 16) (half away from zero).
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ8_0 b;
  QuantizeRow(DType::kQ8_0, x, &b, 32);
  EXPECT_EQ(b.d, FloatToFp16(16.0f / 127.0f));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[31], static_cast<int8_t>(std::lround(15.0f * (127.0f / 16.0f))));
  // All-zero block: d = 0, all q = 0.
  float z[32] = {};
  QuantizeRow(DType::kQ8_0, z, &b, 32);
  EXPECT_EQ(b.d, 0);
  for (int8_t q : b.qs) EXPECT_EQ(q, 0);
}

// The rows layout holds the same values: chunks of up to 32 blocks (1,024 values), each
// chunk's scales, then its int8 values in order. Positions are worked out here by hand
// rather than with the layout's own offset functions.
TEST(Q8_0Rows, SplitPutsEachChunksScalesBeforeItsValues) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 2.0f);
  for (int64_t n : {32, 96, 576, 1024, 1056, 2048, 5632}) {
    std::vector<float> x(n);
    for (auto& v : x) v = d(rng);
    std::vector<BlockQ8_0> blocks(n / 32);
    QuantizeRow(DType::kQ8_0, x.data(), blocks.data(), n);
    std::vector<uint8_t> split(RowBytes(DType::kQ8_0Rows, n));
    SplitQ8_0Row(blocks.data(), split.data(), n);
    const int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t chunk = b / 32, in_chunk = b % 32;
      const int64_t chunk_blocks = std::min<int64_t>(32, nb - chunk * 32);
      const int64_t chunk_start = chunk * 1088;  // a full chunk: 64 bytes of scales + 1,024 values
      EXPECT_EQ(std::memcmp(split.data() + chunk_start + 2 * chunk_blocks + in_chunk * 32, blocks[b].qs, 32), 0) << n << " " << b;
      uint16_t scale;
      std::memcpy(&scale, split.data() + chunk_start + 2 * in_chunk, 2);
      EXPECT_EQ(scale, blocks[b].d) << n << " " << b;
    }
    std::vector<float> from_blocks(n), from_rows(n);
    DequantizeRow(DType::kQ8_0, blocks.data(), from_blocks.data(), n);
    DequantizeRow(DType::kQ8_0Rows, split.data(), from_rows.data(), n);
    EXPECT_EQ(from_blocks, from_rows) << n;
    // Quantizing straight to the rows layout gives the same bytes.
    std::vector<uint8_t> direct(split.size());
    QuantizeRow(DType::kQ8_0Rows, x.data(), direct.data(), n);
    EXPECT_EQ(direct, split) << n;
  }
}

TEST(Q4_0, DequantizesKnownBlock) {
  BlockQ4_0 b;
  b.d = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  DequantizeRow(DType::kQ4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * (j - 8)) << j;             // low nibbles: elements 0..15
    EXPECT_EQ(out[16 + j], 2.0f * (7 - j)) << 16 + j;  // high nibbles: elements 16..31
  }
}

TEST(Q4_0, QuantizesLikeGgml) {
  // Largest magnitude is +8 (element 5): d = 8 / -8 = -1, so x maps to q = 8 - x.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j % 15) - 7);
  x[5] = 8.0f;
  BlockQ4_0 b;
  QuantizeRow(DType::kQ4_0, x, &b, 32);
  EXPECT_EQ(b.d, FloatToFp16(-1.0f));
  float y[32];
  DequantizeRow(DType::kQ4_0, &b, y, 32);
  for (int j = 0; j < 32; ++j) {
    if (x[j] == -8.0f) continue;  // q would be 16: clamped to 15
    EXPECT_EQ(y[j], x[j]) << j;
  }
  EXPECT_EQ(y[5], 8.0f);
}

// Round trips over random rows: error bounded by the block's step (F16/BF16 by their precision).
void CheckRoundTrip(DType t, float rel_bound_of_amax) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t n = 32 * 64;
  std::vector<float> x(n), y(n);
  for (float& v : x) v = dist(rng) * (1 + static_cast<float>(rng() % 100));
  std::vector<uint8_t> q(RowBytes(t, n));
  QuantizeRow(t, x.data(), q.data(), n);
  DequantizeRow(t, q.data(), y.data(), n);
  double sq_err = 0, sq = 0;
  for (int64_t blk = 0; blk < n / 32; ++blk) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
    for (int j = 0; j < 32; ++j) {
      const int64_t i = blk * 32 + j;
      ASSERT_LE(std::fabs(x[i] - y[i]), rel_bound_of_amax * amax + 1e-6f) << GetDTypeInfo(t).name << " element " << i;
      sq_err += double(x[i] - y[i]) * (x[i] - y[i]);
      sq += double(x[i]) * x[i];
    }
  }
  EXPECT_GT(sq, 0);
}

TEST(QuantRoundTrip, ErrorBounds) {
  CheckRoundTrip(DType::kF32, 0.0f);
  CheckRoundTrip(DType::kF16, 1.0f / 2048);  // half an ulp of the largest value
  CheckRoundTrip(DType::kBF16, 1.0f / 256);
  // Q8_0: half a step (amax/127/2) plus the f16 rounding of d (2^-11 relative, times 127).
  CheckRoundTrip(DType::kQ8_0, (0.5f + 127.0f / 2048) / 127.0f);
  // Q4_0: one step (amax/8) at the clamped end, half a step elsewhere, plus f16 rounding of d.
  CheckRoundTrip(DType::kQ4_0, (1.0f + 8.0f / 2048) / 8.0f);
}

TEST(QuantRoundTrip, Q8_0IsTight) {
  // Mean error of Q8_0 on smooth data is far below the worst-case bound.
  const int64_t n = 4096;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = std::sin(0.01f * i) * 3.0f;
  std::vector<uint8_t> q(RowBytes(DType::kQ8_0, n));
  QuantizeRow(DType::kQ8_0, x.data(), q.data(), n);
  DequantizeRow(DType::kQ8_0, q.data(), y.data(), n);
  double err = 0;
  for (int64_t i = 0; i < n; ++i) err += std::fabs(x[i] - y[i]);
  EXPECT_LT(err / n, 3.0 / 127 / 2);
}

// ggml's Q4_K layout, decoded here element by element (independently of quant.cpp's loops).
struct RawQ4K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
struct RawQ6K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

TEST(Q4_K, MatchesLayoutDefinition) {
  std::mt19937 rng(7);
  RawQ4K b[2];
  std::memset(b, 0, sizeof(b));
  uint8_t sc[2][8], mn[2][8];
  for (int k = 0; k < 2; ++k) {
    b[k].d = FloatToFp16(0.25f * (k + 1));
    b[k].dmin = FloatToFp16(0.125f);
    for (int s = 0; s < 8; ++s) {
      sc[k][s] = static_cast<uint8_t>(rng() % 64);
      mn[k][s] = static_cast<uint8_t>(rng() % 64);
      // 6-bit scales/mins: sub-blocks 0..3 in bytes 0..7; 4..7 split over bytes 8..11 and the top bits of 0..7.
      if (s < 4) {
        b[k].scales[s] |= sc[k][s];
        b[k].scales[s + 4] |= mn[k][s];
      } else {
        b[k].scales[s + 4] = static_cast<uint8_t>((sc[k][s] & 0xF) | ((mn[k][s] & 0xF) << 4));
        b[k].scales[s - 4] |= static_cast<uint8_t>((sc[k][s] >> 4) << 6);
        b[k].scales[s] |= static_cast<uint8_t>((mn[k][s] >> 4) << 6);
      }
    }
    for (uint8_t& q : b[k].qs) q = static_cast<uint8_t>(rng());
  }
  float out[512];
  DequantizeRow(DType::kQ4_K, b, out, 512);
  for (int e = 0; e < 512; ++e) {
    const RawQ4K& blk = b[e / 256];
    const int r = e % 256, s = r / 32, l = r % 32;
    const uint8_t byte = blk.qs[(s / 2) * 32 + l];
    const int q = (s % 2 == 0) ? (byte & 0xF) : (byte >> 4);
    const float expect = Fp16ToFloat(blk.d) * sc[e / 256][s] * q - Fp16ToFloat(blk.dmin) * mn[e / 256][s];
    ASSERT_FLOAT_EQ(out[e], expect) << e;
  }
}

TEST(Q6_K, MatchesLayoutDefinition) {
  std::mt19937 rng(9);
  RawQ6K b[2];
  for (int k = 0; k < 2; ++k) {
    for (uint8_t& v : b[k].ql) v = static_cast<uint8_t>(rng());
    for (uint8_t& v : b[k].qh) v = static_cast<uint8_t>(rng());
    for (int8_t& v : b[k].scales) v = static_cast<int8_t>(rng());
    b[k].d = FloatToFp16(0.01f * (k + 1));
  }
  static_assert(sizeof(RawQ6K) == 210);
  float out[512];
  DequantizeRow(DType::kQ6_K, b, out, 512);
  for (int e = 0; e < 512; ++e) {
    const RawQ6K& blk = b[e / 256];
    const int r = e % 256, h = r / 128, quarter = (r % 128) / 32, l = r % 32;
    const uint8_t lo = blk.ql[h * 64 + l + (quarter % 2) * 32];
    const int low4 = quarter < 2 ? (lo & 0xF) : (lo >> 4);
    const int high2 = (blk.qh[h * 32 + l] >> (2 * quarter)) & 3;
    const int q = (low4 | (high2 << 4)) - 32;
    const float expect = Fp16ToFloat(blk.d) * blk.scales[h * 8 + l / 16 + 2 * quarter] * q;
    ASSERT_FLOAT_EQ(out[e], expect) << e;
  }
}

TEST(DType, RowBytes) {
  EXPECT_EQ(RowBytes(DType::kF32, 10), 40u);
  EXPECT_EQ(RowBytes(DType::kBF16, 10), 20u);
  EXPECT_EQ(RowBytes(DType::kQ8_0, 64), 68u);
  EXPECT_EQ(RowBytes(DType::kQ4_0, 64), 36u);
  EXPECT_EQ(RowBytes(DType::kQ8_0Rows, 64), RowBytes(DType::kQ8_0, 64));
  EXPECT_EQ(RowBytes(DType::kQ4_K, 512), 288u);
  EXPECT_EQ(RowBytes(DType::kQ6_K, 256), 210u);
}

}  // namespace
}  // namespace kvserve
