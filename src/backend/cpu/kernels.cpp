#include "backend/cpu/kernels.h"

#include <cpuid.h>
#include <immintrin.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "backend/cpu/kernels_internal.h"
#include "model/quant.h"
#include "util/status.h"

namespace kvserve {

void QuantizeActivationQ8Scalar(const float* x, int64_t n, int8_t* qs, float* scales) {
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    scales[b] = d;
    // Round half to even, as the SIMD version's conversion does, so both give the same bytes.
    for (int j = 0; j < 32; ++j) qs[b * 32 + j] = static_cast<int8_t>(std::nearbyint(x[b * 32 + j] * id));
  }
}

namespace {
// One stretch of DotKernels::attend (AttendSpans below walks the spans) from a kernel
// set's own scale_axpy (the scalar and AVX2 sets; the AVX-512 set has its own kernel),
// head by head: a chunk's scores are one axpy per dimension over the transposed keys,
// then one rescale of the accumulator if the max grew.
template <void (*Axpy)(float, float, const float*, float*, int64_t)>
void AttendWithAxpy(const float* q, int heads, const float* k, int64_t k_stride, const float* v, int64_t n, int64_t d,
                    float scale, float* m, float* sum, float* out) {
  constexpr int64_t kChunk = 64;
  float sc[kChunk];
  for (int h = 0; h < heads; ++h) {
    const float* qh = q + h * d;
    float* oh = out + h * d;
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
      const int64_t cnt = std::min(kChunk, n - j0);
      std::fill(sc, sc + cnt, 0.0f);
      for (int64_t i = 0; i < d; ++i) Axpy(1.0f, qh[i], k + i * k_stride + j0, sc, cnt);
      float bm = m[h];
      for (int64_t j = 0; j < cnt; ++j) {
        sc[j] *= scale;
        bm = std::max(bm, sc[j]);
      }
      if (bm > m[h]) {
        const float r = std::exp(m[h] - bm);  // 0 before the first key
        sum[h] *= r;
        Axpy(r, 0.0f, v, oh, d);
        m[h] = bm;
      }
      for (int64_t j = 0; j < cnt; ++j) {
        const float e = std::exp(sc[j] - m[h]);
        sum[h] += e;
        Axpy(1.0f, e, v + (j0 + j) * d, oh, d);
      }
    }
  }
}

// One stretch of DotKernels::attend_f16 from a set's float one: the keys and values are
// widened a piece at a time into stack buffers (32 KiB each) and attended as floats.
template <void (*Widen)(const uint16_t*, float*, int64_t),
          void (*Attend)(const float*, int, const float*, int64_t, const float*, int64_t, int64_t, float, float*, float*, float*)>
void AttendF16ByWidening(const float* q, int heads, const uint16_t* k, int64_t k_stride, const uint16_t* v, int64_t n, int64_t d,
                         float scale, float* m, float* sum, float* out) {
  constexpr int64_t kBufferFloats = 8192;
  float kf[kBufferFloats], vf[kBufferFloats];
  const int64_t piece = std::max<int64_t>(1, kBufferFloats / std::max<int64_t>(d, 1));
  KV_CHECK_MSG(d <= kBufferFloats, "head dim too large for the f16 attention buffers");
  for (int64_t j0 = 0; j0 < n; j0 += piece) {
    const int64_t cnt = std::min(piece, n - j0);
    for (int64_t i = 0; i < d; ++i) Widen(k + i * k_stride + j0, kf + i * cnt, cnt);
    Widen(v + j0 * d, vf, cnt * d);
    Attend(q, heads, kf, cnt, vf, cnt, d, scale, m, sum, out);
  }
}

// DotKernels::attend over spans from a per-stretch attend (the scalar and AVX2 sets).
template <typename KV, void (*Attend)(const float*, int, const KV*, int64_t, const KV*, int64_t, int64_t, float, float*, float*, float*)>
void AttendSpans(const float* q, int heads, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale, float* m,
                 float* sum, float* out) {
  for (int s = 0; s < num_spans; ++s)
    Attend(q, heads, static_cast<const KV*>(spans[s].k), k_stride, static_cast<const KV*>(spans[s].v), spans[s].n, d, scale, m, sum,
           out);
}

void WidenF16Scalar(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = Fp16ToFloat(x[i]);
}
void ToF16Scalar(const float* x, uint16_t* y, int64_t n) {
  // std::clamp keeps NaN as it is (both comparisons are false).
  for (int64_t i = 0; i < n; ++i) y[i] = FloatToFp16(std::clamp(x[i], -kF16Max, kF16Max));
}
}  // namespace

void QuantizeActivationQ8(const float* x, int64_t n, int8_t* qs, float* scales) {
  static const auto impl = [] {
    auto* simd = Avx512QuantizeActivationQ8();
    return simd ? simd : &QuantizeActivationQ8Scalar;
  }();
  impl(x, n, qs, scales);
}

namespace {

// ---- Scalar ----
float DotF32Scalar(const float* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += w[i] * x[i];
  return s;
}
float DotF16Scalar(const uint16_t* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += Fp16ToFloat(w[i]) * x[i];
  return s;
}
float DotBF16Scalar(const uint16_t* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += Bf16ToFloat(w[i]) * x[i];
  return s;
}
float DotQ8_0Scalar(const void* wv, const int8_t* xq, const float* xs, int64_t n) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(wv);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t acc = 0;
    for (int j = 0; j < 32; ++j) acc += w[b].qs[j] * xq[b * 32 + j];
    s += Fp16ToFloat(w[b].d) * xs[b] * static_cast<float>(acc);
  }
  return s;
}
float DotQ4_0Scalar(const void* wv, const int8_t* xq, const float* xs, int64_t n) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(wv);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t acc = 0;
    for (int j = 0; j < 16; ++j) {
      acc += (static_cast<int>(w[b].qs[j] & 0xF) - 8) * xq[b * 32 + j];
      acc += (static_cast<int>(w[b].qs[j] >> 4) - 8) * xq[b * 32 + j + 16];
    }
    s += Fp16ToFloat(w[b].d) * xs[b] * static_cast<float>(acc);
  }
  return s;
}
// One kQ8_0Rows row (chunks of scales, then values: model/quant.h).
float DotQ8_0RowScalar(const void* wv, const int8_t* xq, const float* xs, int64_t n) {
  const auto* row = static_cast<const uint8_t*>(wv);
  const int64_t nb = n / 32;
  float s = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const auto* q = reinterpret_cast<const int8_t*>(row + Q8_0RowsValuesOffset(nb, b));
    int32_t acc = 0;
    for (int j = 0; j < 32; ++j) acc += q[j] * xq[b * 32 + j];
    uint16_t d;
    std::memcpy(&d, row + Q8_0RowsScaleOffset(b), 2);
    s += Fp16ToFloat(d) * xs[b] * static_cast<float>(acc);
  }
  return s;
}
void DotQ8_0RowsScalar(const void* w, size_t row_bytes, int64_t rows, const int8_t* xq, const float* xs, int64_t n, float* y) {
  for (int64_t r = 0; r < rows; ++r) y[r] = DotQ8_0RowScalar(static_cast<const uint8_t*>(w) + r * row_bytes, xq, xs, n);
}

// Scalar tiles: rows x kDotTile independent dots (the reference the SIMD tiles match).
template <typename Dot>
void FloatTileRows(Dot dot, const void* w, size_t row_bytes, int rows, const float* x, int64_t xs, int64_t n, float* out) {
  for (int r = 0; r < rows; ++r)
    for (int t = 0; t < kDotTile; ++t) out[t * kTileRows + r] = dot(static_cast<const uint8_t*>(w) + r * row_bytes, x + t * xs, n);
}
template <typename Dot>
void QuantTileRows(Dot dot, const void* w, size_t row_bytes, int rows, const int8_t* xq, int64_t qstride, const float* xs,
                   int64_t sstride, int64_t n, float* out) {
  for (int r = 0; r < rows; ++r)
    for (int t = 0; t < kDotTile; ++t)
      out[t * kTileRows + r] = dot(static_cast<const uint8_t*>(w) + r * row_bytes, xq + t * qstride, xs + t * sstride, n);
}
void F32TileScalar(const void* w, size_t rb, int rows, const float* x, int64_t xs, int64_t n, float* out) {
  FloatTileRows([](const uint8_t* row, const float* xt, int64_t m) { return DotF32Scalar(reinterpret_cast<const float*>(row), xt, m); },
                w, rb, rows, x, xs, n, out);
}
void F16TileScalar(const void* w, size_t rb, int rows, const float* x, int64_t xs, int64_t n, float* out) {
  FloatTileRows([](const uint8_t* row, const float* xt, int64_t m) { return DotF16Scalar(reinterpret_cast<const uint16_t*>(row), xt, m); },
                w, rb, rows, x, xs, n, out);
}
void BF16TileScalar(const void* w, size_t rb, int rows, const float* x, int64_t xs, int64_t n, float* out) {
  FloatTileRows([](const uint8_t* row, const float* xt, int64_t m) { return DotBF16Scalar(reinterpret_cast<const uint16_t*>(row), xt, m); },
                w, rb, rows, x, xs, n, out);
}
void Q8_0TileScalar(const void* w, size_t rb, int rows, const int8_t* xq, int64_t qstride, const float* xs, int64_t sstride, int64_t n,
                    float* out) {
  QuantTileRows(DotQ8_0Scalar, w, rb, rows, xq, qstride, xs, sstride, n, out);
}
void Q4_0TileScalar(const void* w, size_t rb, int rows, const int8_t* xq, int64_t qstride, const float* xs, int64_t sstride, int64_t n,
                    float* out) {
  QuantTileRows(DotQ4_0Scalar, w, rb, rows, xq, qstride, xs, sstride, n, out);
}
void Q8_0RowsTileScalar(const void* w, size_t rb, int rows, const int8_t* xq, int64_t qstride, const float* xs, int64_t sstride,
                        int64_t n, float* out) {
  QuantTileRows(DotQ8_0RowScalar, w, rb, rows, xq, qstride, xs, sstride, n, out);
}
void ScaleAxpyScalar(float scale, float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] * scale + a * x[i];
}
// The AVX2 set uses this one too: even scalar, the activation was ~1.5% of a decode step.
void SiluMulScalar(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// ---- AVX2 + FMA + F16C ----
#define KV_AVX2 __attribute__((target("avx2,fma,f16c")))

KV_AVX2 inline float HSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

KV_AVX2 float DotF32Avx2(const float* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float s = HSum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

KV_AVX2 float DotF16Avx2(const uint16_t* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = HSum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += Fp16ToFloat(w[i]) * x[i];
  return s;
}

KV_AVX2 float DotBF16Avx2(const uint16_t* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i r0 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    __m256i r1 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
    a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(r0, 16)), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(r1, 16)), _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = HSum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += Bf16ToFloat(w[i]) * x[i];
  return s;
}

// f16 <-> f32 with F16C, 8 at a time (round to nearest even, as FloatToFp16).
KV_AVX2 void WidenF16Avx2(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = Fp16ToFloat(x[i]);
}
KV_AVX2 void ToF16Avx2(const float* x, uint16_t* y, int64_t n) {
  // min/max return their second operand when either is NaN: x second keeps NaN.
  const __m256 hi = _mm256_set1_ps(kF16Max), lo = _mm256_set1_ps(-kF16Max);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_max_ps(lo, _mm256_min_ps(hi, _mm256_loadu_ps(x + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = FloatToFp16(std::clamp(x[i], -kF16Max, kF16Max));
}

// Sum of int8 products of 32 lanes, as 8 int32 lanes (|w| <= 127 so maddubs cannot saturate).
KV_AVX2 inline __m256i DotI8(__m256i w, __m256i x) {
  const __m256i aw = _mm256_sign_epi8(w, w);
  const __m256i sx = _mm256_sign_epi8(x, w);
  const __m256i p16 = _mm256_maddubs_epi16(aw, sx);
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

KV_AVX2 inline __m256 Q8_0BlockAvx2(const BlockQ8_0& w, const int8_t* xq, float xs) {
  const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs));
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
  return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(w.d) * xs), _mm256_cvtepi32_ps(DotI8(wq, xv)));
}

KV_AVX2 float DotQ8_0Avx2(const void* wv, const int8_t* xq, const float* xs, int64_t n) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(wv);
  // Two accumulators: one FMA chain would bound the loop by its latency (4 cycles a block).
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / 32;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = _mm256_add_ps(acc0, Q8_0BlockAvx2(w[b], xq + b * 32, xs[b]));
    acc1 = _mm256_add_ps(acc1, Q8_0BlockAvx2(w[b + 1], xq + b * 32 + 32, xs[b + 1]));
  }
  if (b < nb) acc0 = _mm256_add_ps(acc0, Q8_0BlockAvx2(w[b], xq + b * 32, xs[b]));
  return HSum(_mm256_add_ps(acc0, acc1));
}

KV_AVX2 float DotQ4_0Avx2(const void* wv, const int8_t* xq, const float* xs, int64_t n) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(wv);
  __m256 acc = _mm256_setzero_ps();
  const __m256i mask = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
    __m256i wq = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);  // low nibbles -> elements 0..15, high -> 16..31
    wq = _mm256_sub_epi8(_mm256_and_si256(wq, mask), eight);
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d) * xs[b]);
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(DotI8(wq, xv)), acc);
  }
  return HSum(acc);
}

// Tiles: each 8-wide weight vector is loaded (and converted) once and multiplied
// into kDotTile accumulators.
template <typename Load8, typename Elem>
KV_AVX2 inline void FloatTileAvx2(Load8 load8, Elem elem, const float* x, int64_t xs, int64_t n, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  const float *x0 = x, *x1 = x + xs, *x2 = x + 2 * xs, *x3 = x + 3 * xs;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 wv = load8(i);
    a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + i), a0);
    a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + i), a1);
    a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + i), a2);
    a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + i), a3);
  }
  out[0] = HSum(a0);
  out[1] = HSum(a1);
  out[2] = HSum(a2);
  out[3] = HSum(a3);
  for (; i < n; ++i) {
    const float wi = elem(i);
    for (int t = 0; t < kDotTile; ++t) out[t] += wi * x[t * xs + i];
  }
}

KV_AVX2 void F32TileAvx2Row(const float* w, const float* x, int64_t xs, int64_t n, float* out) {
  FloatTileAvx2([&](int64_t i) KV_AVX2 { return _mm256_loadu_ps(w + i); }, [&](int64_t i) { return w[i]; }, x, xs, n, out);
}

KV_AVX2 void F16TileAvx2Row(const uint16_t* w, const float* x, int64_t xs, int64_t n, float* out) {
  FloatTileAvx2([&](int64_t i) KV_AVX2 { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))); },
                [&](int64_t i) { return Fp16ToFloat(w[i]); }, x, xs, n, out);
}

KV_AVX2 void BF16TileAvx2Row(const uint16_t* w, const float* x, int64_t xs, int64_t n, float* out) {
  FloatTileAvx2(
      [&](int64_t i) KV_AVX2 {
        const __m256i r = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(r, 16));
      },
      [&](int64_t i) { return Bf16ToFloat(w[i]); }, x, xs, n, out);
}

// Q8 tiles: the weight block's |w| and signs are prepared once per block and
// reused for every activation row.
template <typename LoadBlock>
KV_AVX2 inline void QuantTileAvx2(LoadBlock load, int64_t nb, const int8_t* xq, int64_t qs, const float* xs, int64_t ss,
                                  float* out) {
  __m256 acc[kDotTile];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    float d;
    const __m256i wq = load(b, &d);
    const __m256i aw = _mm256_sign_epi8(wq, wq);
    for (int t = 0; t < kDotTile; ++t) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + t * qs + b * 32));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wq)), ones);
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xs[t * ss + b]), _mm256_cvtepi32_ps(p), acc[t]);
    }
  }
  for (int t = 0; t < kDotTile; ++t) out[t] = HSum(acc[t]);
}

KV_AVX2 void Q8_0TileAvx2Row(const void* wv, const int8_t* xq, int64_t qs, const float* xs, int64_t ss, int64_t n, float* out) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(wv);
  QuantTileAvx2([&](int64_t b, float* d) KV_AVX2 {
    *d = _cvtsh_ss(w[b].d);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
  }, n / 32, xq, qs, xs, ss, out);
}

KV_AVX2 void Q4_0TileAvx2Row(const void* wv, const int8_t* xq, int64_t qs, const float* xs, int64_t ss, int64_t n, float* out) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(wv);
  const __m256i mask = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  QuantTileAvx2([&](int64_t b, float* d) KV_AVX2 {
    *d = _cvtsh_ss(w[b].d);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
    const __m256i wq = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_sub_epi8(_mm256_and_si256(wq, mask), eight);
  }, n / 32, xq, qs, xs, ss, out);
}

// Multi-row AVX2 tiles: the one-row tile per row (AVX2 has too few registers for a
// register-blocked rows x tokens tile; the AVX-512 set has one).
template <typename Elem, void (*RowTile)(const Elem*, const float*, int64_t, int64_t, float*)>
void FloatTileFromRows(const void* w, size_t rb, int rows, const float* x, int64_t xs, int64_t n, float* out) {
  float o[kDotTile];
  for (int r = 0; r < rows; ++r) {
    RowTile(reinterpret_cast<const Elem*>(static_cast<const uint8_t*>(w) + r * rb), x, xs, n, o);
    for (int t = 0; t < kDotTile; ++t) out[t * kTileRows + r] = o[t];
  }
}
template <void (*RowTile)(const void*, const int8_t*, int64_t, const float*, int64_t, int64_t, float*)>
void QuantTileFromRows(const void* w, size_t rb, int rows, const int8_t* xq, int64_t qs, const float* xs, int64_t ss, int64_t n,
                       float* out) {
  float o[kDotTile];
  for (int r = 0; r < rows; ++r) {
    RowTile(static_cast<const uint8_t*>(w) + r * rb, xq, qs, xs, ss, n, o);
    for (int t = 0; t < kDotTile; ++t) out[t * kTileRows + r] = o[t];
  }
}
KV_AVX2 void ScaleAxpyAvx2(float scale, float a, const float* x, float* y, int64_t n) {
  const __m256 vs = _mm256_set1_ps(scale), va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_mul_ps(vs, _mm256_loadu_ps(y + i))));
  for (; i < n; ++i) y[i] = y[i] * scale + a * x[i];
}

const DotKernels kScalar = {DotF32Scalar,
                             DotF16Scalar,
                             DotBF16Scalar,
                             DotQ8_0Scalar,
                             DotQ4_0Scalar,
                             F32TileScalar,
                             F16TileScalar,
                             BF16TileScalar,
                             Q8_0TileScalar,
                             Q4_0TileScalar,
                             DotQ8_0RowsScalar,
                             Q8_0RowsTileScalar,
                             ScaleAxpyScalar,
                             AttendSpans<float, AttendWithAxpy<ScaleAxpyScalar>>,
                             AttendSpans<uint16_t, AttendF16ByWidening<WidenF16Scalar, AttendWithAxpy<ScaleAxpyScalar>>>,
                             ToF16Scalar,
                             SiluMulScalar,
                             "scalar",
                             /*prefers_q8_0_rows=*/false,
                             /*software_prefetch=*/true};
// kQ8_0Rows: the scalar loops (weights are re-laid out only for a set that prefers it).
const DotKernels kAvx2 = {DotF32Avx2,
                           DotF16Avx2,
                           DotBF16Avx2,
                           DotQ8_0Avx2,
                           DotQ4_0Avx2,
                           FloatTileFromRows<float, F32TileAvx2Row>,
                           FloatTileFromRows<uint16_t, F16TileAvx2Row>,
                           FloatTileFromRows<uint16_t, BF16TileAvx2Row>,
                           QuantTileFromRows<Q8_0TileAvx2Row>,
                           QuantTileFromRows<Q4_0TileAvx2Row>,
                           DotQ8_0RowsScalar,
                           Q8_0RowsTileScalar,
                           ScaleAxpyAvx2,
                           AttendSpans<float, AttendWithAxpy<ScaleAxpyAvx2>>,
                           AttendSpans<uint16_t, AttendF16ByWidening<WidenF16Avx2, AttendWithAxpy<ScaleAxpyAvx2>>>,
                           ToF16Avx2,
                           SiluMulScalar,
                           "avx2",
                           /*prefers_q8_0_rows=*/false,
                           /*software_prefetch=*/true};

}  // namespace

const DotKernels& ScalarDotKernels() { return kScalar; }

std::vector<const DotKernels*> RowPrefetchVariants() {
  std::vector<const DotKernels*> all;
  for (const DotKernels& k : Avx512RowPrefetchVariants()) all.push_back(&k);
  return all;
}

const DotKernels* ShortRowsOneAtATime() { return Avx512ShortRowsOneAtATime(); }

const DotKernels* RowPrefetchVariant(int long_chunks, int short_chunks) {
  const std::string name = fmt::format("prefetch {}/{} chunks", long_chunks, short_chunks);
  for (const DotKernels& k : Avx512RowPrefetchVariants())
    if (std::string_view(k.name).ends_with(name)) return &k;
  return nullptr;
}

std::vector<const DotKernels*> AvailableDotKernels() {
  std::vector<const DotKernels*> all = {&kScalar};
  __builtin_cpu_init();
  // F16C is not a feature name clang's __builtin_cpu_supports knows; every CPU with
  // AVX2 and FMA has it.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) all.push_back(&kAvx2);
  if (const DotKernels* k = Avx512Zen4DotKernels()) all.push_back(k);
  if (const DotKernels* k = Avx512IntelDotKernels()) all.push_back(k);
  if (const DotKernels* k = Avx512DotKernels()) all.push_back(k);
  return all;
}

namespace {
// CPUID leaf 0's vendor string ("" where CPUID has no leaf 0).
std::string CpuVendor() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return "";
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return vendor;
}
}  // namespace

bool CpuIsIntel() { return CpuVendor() == "GenuineIntel"; }

bool CpuIsAmdFamily19h() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (CpuVendor() != "AuthenticAMD" || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned base_family = (eax >> 8) & 0xF, extended_family = (eax >> 20) & 0xFF;
  const unsigned family = base_family == 0xF ? base_family + extended_family : base_family;
  // Family 19h is Zen 3 and Zen 4; of those only Zen 4 has AVX-512, which the callers
  // check for themselves.
  return family == 0x19;
}

const DotKernels& BestDotKernels() {
  static const DotKernels* best = [] {
    const DotKernels* zen4 = Avx512Zen4DotKernels();
    const DotKernels* intel = Avx512IntelDotKernels();
    if (zen4 != nullptr && CpuIsAmdFamily19h()) return zen4;
    if (intel != nullptr && CpuIsIntel()) return intel;
    return AvailableDotKernels().back();
  }();
  return *best;
}

const DotKernels* Avx512DefaultDotKernels() { return Avx512DotKernels(); }
const DotKernels* Avx512Zen4SetDotKernels() { return Avx512Zen4DotKernels(); }
const DotKernels* Avx512IntelSetDotKernels() { return Avx512IntelDotKernels(); }

void DotRows(const DotKernels& k, const Tensor& w, const float* x, const int8_t* xq, const float* xs, int64_t row_begin,
             int64_t row_end, float* y, float* scratch) {
  const int64_t n = w.cols();
  const size_t row_bytes = RowBytes(w.dtype, n);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  if (w.dtype == DType::kQ8_0Rows) {
    k.q8_0_rows(base + row_begin * row_bytes, row_bytes, row_end - row_begin, xq, xs, n, y);
    return;
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = base + r * row_bytes;
    float v;
    switch (w.dtype) {
      case DType::kF32: v = k.f32(reinterpret_cast<const float*>(row), x, n); break;
      case DType::kF16: v = k.f16(reinterpret_cast<const uint16_t*>(row), x, n); break;
      case DType::kBF16: v = k.bf16(reinterpret_cast<const uint16_t*>(row), x, n); break;
      // One row at a time: a 4-row decode kernel (four interleaved weight streams)
      // measured at half the bandwidth of this one on Zen 5.
      case DType::kQ8_0: v = k.q8_0(row, xq, xs, n); break;
      case DType::kQ4_0: v = k.q4_0(row, xq, xs, n); break;
      default:
        DequantizeRow(w.dtype, row, scratch, n);
        v = k.f32(scratch, x, n);
        break;
    }
    y[r - row_begin] = v;
  }
}

}  // namespace kvserve

namespace kvserve {

void DotRowsTile(const DotKernels& k, const Tensor& w, const float* x, const int8_t* xq, const float* xs,
                 int64_t row_begin, int64_t row_end, float* y, int64_t y_stride, float* scratch) {
  const int64_t n = w.cols();
  const size_t row_bytes = RowBytes(w.dtype, n);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  float out[kDotTile * kTileRows];
  for (int64_t r = row_begin; r < row_end; r += kTileRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows, row_end - r));
    const uint8_t* row = base + r * row_bytes;
    switch (w.dtype) {
      case DType::kF32: k.f32_tile(row, row_bytes, rows, x, n, n, out); break;
      case DType::kF16: k.f16_tile(row, row_bytes, rows, x, n, n, out); break;
      case DType::kBF16: k.bf16_tile(row, row_bytes, rows, x, n, n, out); break;
      case DType::kQ8_0: k.q8_0_tile(row, row_bytes, rows, xq, n, xs, n / 32, n, out); break;
      case DType::kQ4_0: k.q4_0_tile(row, row_bytes, rows, xq, n, xs, n / 32, n, out); break;
      case DType::kQ8_0Rows: k.q8_0_rows_tile(row, row_bytes, rows, xq, n, xs, n / 32, n, out); break;
      default:
        // K-quants: dequantize one row at a time into scratch.
        for (int i = 0; i < rows; ++i) {
          DequantizeRow(w.dtype, row + i * row_bytes, scratch, n);
          k.f32_tile(scratch, 0, 1, x, n, n, out + i);
        }
        break;
    }
    for (int t = 0; t < kDotTile; ++t)
      for (int i = 0; i < rows; ++i) y[t * y_stride + (r - row_begin) + i] = out[t * kTileRows + i];
  }
}

}  // namespace kvserve
