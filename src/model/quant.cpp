#include "model/quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/status.h"

namespace kvserve {

float Fp16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToFp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (abs < 0x38800000) {  // subnormal or zero in f16
    if (abs < 0x33000000) return static_cast<uint16_t>(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffff) | 0x800000;
    const int shift = 126 - static_cast<int>(e);  // value / 2^-24, as an integer
    uint32_t v = m >> (shift);
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (v & 1))) ++v;
    return static_cast<uint16_t>(sign | v);
  }
  uint32_t v = ((abs >> 13) - ((127 - 15) << 10));
  const uint32_t rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) ++v;
  return static_cast<uint16_t>(sign | v);
}

uint16_t FloatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

namespace {

// Q4_K / Q6_K super-blocks (256 elements), as ggml lays them out.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

void ScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFloat(s[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(s[i]);
      return;
    }
    case DType::kQ8_0: {
      KV_CHECK(n % 32 == 0);
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / 32; ++i) {
        const float d = Fp16ToFloat(b[i].d);
        for (int j = 0; j < 32; ++j) dst[i * 32 + j] = d * b[i].qs[j];
      }
      return;
    }
    case DType::kQ4_0: {
      KV_CHECK(n % 32 == 0);
      const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / 32; ++i) {
        const float d = Fp16ToFloat(b[i].d);
        for (int j = 0; j < 16; ++j) {
          dst[i * 32 + j] = d * (static_cast<int>(b[i].qs[j] & 0xF) - 8);
          dst[i * 32 + j + 16] = d * (static_cast<int>(b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::kQ4_K: {
      KV_CHECK(n % 256 == 0);
      const BlockQ4_K* b = static_cast<const BlockQ4_K*>(src);
      for (int64_t i = 0; i < n / 256; ++i) {
        const float d = Fp16ToFloat(b[i].d), dmin = Fp16ToFloat(b[i].dmin);
        const uint8_t* q = b[i].qs;
        float* y = dst + i * 256;
        int is = 0;
        for (int j = 0; j < 256; j += 64) {
          uint8_t sc, m;
          ScaleMinK4(is, b[i].scales, &sc, &m);
          const float d1 = d * sc, m1 = dmin * m;
          ScaleMinK4(is + 1, b[i].scales, &sc, &m);
          const float d2 = d * sc, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
          q += 32;
          is += 2;
        }
      }
      return;
    }
    case DType::kQ6_K: {
      KV_CHECK(n % 256 == 0);
      const BlockQ6_K* b = static_cast<const BlockQ6_K*>(src);
      for (int64_t i = 0; i < n / 256; ++i) {
        const float d = Fp16ToFloat(b[i].d);
        const uint8_t* ql = b[i].ql;
        const uint8_t* qh = b[i].qh;
        const int8_t* sc = b[i].scales;
        float* y = dst + i * 256;
        for (int half = 0; half < 2; ++half) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = static_cast<int>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
          }
          y += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      return;
    }
    case DType::kQ8_0Rows: {
      KV_CHECK(n % 32 == 0);
      const auto* row = static_cast<const uint8_t*>(src);
      const int64_t nb = n / 32;
      for (int64_t i = 0; i < nb; ++i) {
        uint16_t h;
        std::memcpy(&h, row + Q8_0RowsScaleOffset(i), 2);  // rows are 34 n / 32 bytes apart: 2-byte aligned at best
        const float d = Fp16ToFloat(h);
        const auto* q = reinterpret_cast<const int8_t*>(row + Q8_0RowsValuesOffset(nb, i));
        for (int j = 0; j < 32; ++j) dst[i * 32 + j] = d * q[j];
      }
      return;
    }
  }
}

void SplitQ8_0Row(const void* src, void* dst, int64_t n) {
  KV_CHECK(n % 32 == 0);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  auto* row = static_cast<uint8_t*>(dst);
  const int64_t nb = n / 32;
  for (int64_t i = 0; i < nb; ++i) {
    std::memcpy(row + Q8_0RowsValuesOffset(nb, i), b[i].qs, 32);
    std::memcpy(row + Q8_0RowsScaleOffset(i), &b[i].d, 2);
  }
}

void QuantizeRow(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = FloatToFp16(src[i]);
      return;
    }
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = FloatToBf16(src[i]);
      return;
    }
    case DType::kQ8_0: {
      KV_CHECK(n % 32 == 0);
      BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
      for (int64_t i = 0; i < n / 32; ++i) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src[i * 32 + j]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = FloatToFp16(d);
        for (int j = 0; j < 32; ++j) b[i].qs[j] = static_cast<int8_t>(std::lround(src[i * 32 + j] * id));
      }
      return;
    }
    case DType::kQ4_0: {
      KV_CHECK(n % 32 == 0);
      BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
      for (int64_t i = 0; i < n / 32; ++i) {
        // Scale from the value of largest magnitude (kept with its sign), mapped to -8.
        float amax = 0, vmax = 0;
        for (int j = 0; j < 32; ++j) {
          const float v = src[i * 32 + j];
          if (std::fabs(v) > amax) {
            amax = std::fabs(v);
            vmax = v;
          }
        }
        const float d = vmax / -8.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = FloatToFp16(d);
        for (int j = 0; j < 16; ++j) {
          const int q0 = std::min(15, static_cast<int>(src[i * 32 + j] * id + 8.5f));
          const int q1 = std::min(15, static_cast<int>(src[i * 32 + j + 16] * id + 8.5f));
          b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
      }
      return;
    }
    case DType::kQ8_0Rows: {
      std::vector<BlockQ8_0> blocks(n / 32);
      QuantizeRow(DType::kQ8_0, src, blocks.data(), n);
      SplitQ8_0Row(blocks.data(), dst, n);
      return;
    }
    case DType::kQ4_K:
    case DType::kQ6_K:
      KV_CHECK_MSG(false, "quantizing to K-quants is not supported");
  }
}

}  // namespace kvserve
