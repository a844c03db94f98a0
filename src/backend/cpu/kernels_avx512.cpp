// AVX-512 kernels (F, BW, VL, VNNI): 16 floats or 64 int8 products per instruction.
//
// Integer products use VPDPBUSD, which multiplies unsigned by signed bytes. The
// weights are made unsigned by an offset (Q8_0: w ^ 0x80 = w + 128; Q4_0: the raw
// nibble = w + 8) and the offset's contribution, offset x sum(x), is subtracted by
// starting the accumulator at -dpbusd(offset, x). That correction depends on the
// activation only, so the prefill tiles compute it once per token and share it by
// every weight row; the sign trick of the AVX2 kernels would cost three
// instructions per (row, token) instead.
// GCC 12's own cast intrinsics (_mm512_castsi256_si512 and friends) leave the upper
// lanes undefined on purpose, which its -Wuninitialized reports inside the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/kernels_internal.h"
#include "model/quant.h"
#include "util/status.h"

namespace kvserve {
namespace {

#define KV_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,f16c,fma")))

// ---- Float weights --------------------------------------------------------------

// 16 weights of a float-like type as floats.
struct F32Load {
  static constexpr size_t kBytes = sizeof(float);
  KV_AVX512 static __m512 Load(const void* w, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(w) + i); }
  KV_AVX512 static __m512 LoadMasked(const void* w, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  }
};
struct F16Load {
  static constexpr size_t kBytes = sizeof(uint16_t);
  KV_AVX512 static __m512 Load(const void* w, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  KV_AVX512 static __m512 LoadMasked(const void* w, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i));
  }
};
struct BF16Load {
  static constexpr size_t kBytes = sizeof(uint16_t);
  KV_AVX512 static __m512 Widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  KV_AVX512 static __m512 Load(const void* w, int64_t i) {
    return Widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  KV_AVX512 static __m512 LoadMasked(const void* w, int64_t i, __mmask16 m) {
    return Widen(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i));
  }
};

KV_AVX512 inline __mmask16 TailMask(int64_t left) { return static_cast<__mmask16>((1u << left) - 1); }

// Where a decode loop's lookahead prefetches put their lines: L1 (prefetcht0, the Zen 5
// tuning of kQ8_0Rows) or L2 only (prefetcht1; the Intel set, see kAvx512Intel).
enum class PrefetchTo { kL1, kL2 };

template <PrefetchTo kTo>
KV_AVX512 inline void PrefetchAddress(uintptr_t a) {
  // __builtin_prefetch's third argument is the locality: 3 is prefetcht0, 2 prefetcht1.
  __builtin_prefetch(reinterpret_cast<const char*>(a), 0, kTo == PrefetchTo::kL1 ? 3 : 2);
}

// Every line of [begin, begin + bytes) into kTo. The range may run past the end of its
// object (a lookahead): addresses as integers, and a prefetch does not fault.
template <PrefetchTo kTo>
KV_AVX512 inline void PrefetchLines(uintptr_t begin, size_t bytes) {
  for (uintptr_t line = begin & ~uintptr_t{63}; line < begin + bytes; line += 64) PrefetchAddress<kTo>(line);
}

// Decode: one row, four independent accumulators (the FMA latency is hidden and the
// loads of four vectors are in flight at once). kAhead > 0: each step also prefetches
// into L2 the lines kAhead bytes on (past the row's end: the next rows, which the same
// thread reads next; an address formed as an integer, which a prefetch does not fault
// on), as the Intel set's kQ8_0Rows loop does.
template <typename L, size_t kAhead = 0>
KV_AVX512 float DotFloat(const void* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    if constexpr (kAhead > 0)
      for (size_t b = 0; b < 64 * L::kBytes; b += 64) PrefetchAddress<PrefetchTo::kL2>(reinterpret_cast<uintptr_t>(w) + i * L::kBytes + kAhead + b);
    a0 = _mm512_fmadd_ps(L::Load(w, i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(L::Load(w, i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(L::Load(w, i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(L::Load(w, i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(L::Load(w, i), _mm512_loadu_ps(x + i), a0);
  if (i < n) {
    const __mmask16 m = TailMask(n - i);
    a1 = _mm512_fmadd_ps(L::LoadMasked(w, i, m), _mm512_maskz_loadu_ps(m, x + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

KV_AVX512 float DotF32(const float* w, const float* x, int64_t n) { return DotFloat<F32Load>(w, x, n); }
KV_AVX512 float DotF16(const uint16_t* w, const float* x, int64_t n) { return DotFloat<F16Load>(w, x, n); }
KV_AVX512 float DotBF16(const uint16_t* w, const float* x, int64_t n) { return DotFloat<BF16Load>(w, x, n); }

// The float decode rows with the Intel set's L2 lookahead, 4 KiB ahead.
constexpr size_t kFloatRowPrefetchAhead = 4096;
KV_AVX512 float DotF32Ahead(const float* w, const float* x, int64_t n) { return DotFloat<F32Load, kFloatRowPrefetchAhead>(w, x, n); }
KV_AVX512 float DotF16Ahead(const uint16_t* w, const float* x, int64_t n) { return DotFloat<F16Load, kFloatRowPrefetchAhead>(w, x, n); }
KV_AVX512 float DotBF16Ahead(const uint16_t* w, const float* x, int64_t n) { return DotFloat<BF16Load, kFloatRowPrefetchAhead>(w, x, n); }

// Prefill: R weight rows x kDotTile tokens, 16 columns at a time, R * kDotTile
// accumulators: each weight vector feeds kDotTile FMAs and each activation vector R.
template <typename L, int R>
KV_AVX512 void FloatTileRows(const uint8_t* w, size_t row_bytes, const float* x, int64_t xs, int64_t n, float* out) {
  __m512 acc[R][kDotTile];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  int64_t i = 0;
  auto step = [&](int64_t at, __mmask16 m, bool masked) KV_AVX512 {
    __m512 xv[kDotTile];
    for (int t = 0; t < kDotTile; ++t) xv[t] = masked ? _mm512_maskz_loadu_ps(m, x + t * xs + at) : _mm512_loadu_ps(x + t * xs + at);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = masked ? L::LoadMasked(w + r * row_bytes, at, m) : L::Load(w + r * row_bytes, at);
      for (int t = 0; t < kDotTile; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  };
  for (; i + 16 <= n; i += 16) step(i, 0xFFFF, false);
  if (i < n) step(i, TailMask(n - i), true);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < kDotTile; ++t) out[t * kTileRows + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <typename L>
KV_AVX512 void FloatTile(const void* w, size_t row_bytes, int rows, const float* x, int64_t xs, int64_t n, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  switch (rows) {
    case 1: FloatTileRows<L, 1>(wb, row_bytes, x, xs, n, out); break;
    case 2: FloatTileRows<L, 2>(wb, row_bytes, x, xs, n, out); break;
    case 3: FloatTileRows<L, 3>(wb, row_bytes, x, xs, n, out); break;
    default: FloatTileRows<L, 4>(wb, row_bytes, x, xs, n, out); break;
  }
}

// ---- Q8_0 / Q4_0 weights --------------------------------------------------------

// Two consecutive 32-weight blocks (the second may be absent: zeros) as 64 unsigned
// bytes (weight + offset) and their two fp16 scales as floats {d0 x8, d1 x8}.
struct Q8Blocks {
  static constexpr int kOffset = 128;
  KV_AVX512 static __m512i Weights(const void* row, int64_t b, bool pair) {
    const BlockQ8_0* w = static_cast<const BlockQ8_0*>(row) + b;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[0].qs));
    const __m512i v = pair ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[1].qs)), 1)
                           : _mm512_zextsi256_si512(lo);
    return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static constexpr int kBlockWords = sizeof(BlockQ8_0) / 2;
};
struct Q4Blocks {
  static constexpr int kOffset = 8;
  KV_AVX512 static __m512i Weights(const void* row, int64_t b, bool pair) {
    const BlockQ4_0* w = static_cast<const BlockQ4_0*>(row) + b;
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[0].qs));
    const __m128i q1 = pair ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[1].qs)) : _mm_setzero_si128();
    // Block layout: low nibbles are elements 0..15, high nibbles 16..31.
    const __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(q, mask), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
    // 128-bit lanes {lo0, lo1, hi0, hi1} -> {lo0, hi0, lo1, hi1}.
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    const __m512i v = _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0));
    return pair ? v : _mm512_zextsi256_si512(_mm512_castsi512_si256(v));
  }
  static constexpr int kBlockWords = sizeof(BlockQ4_0) / 2;
};

// The same for the values of a kQ8_0Rows row (`values`: a block's values in its
// chunk): a pair's 64 values are contiguous (chunks hold an even number of blocks).
struct Q8RowsBlocks {
  static constexpr int kOffset = 128;
  KV_AVX512 static __m512i Weights(const void* values, int64_t b, bool pair) {
    const auto* q = static_cast<const int8_t*>(values) + b * 32;
    const __m512i v = pair ? _mm512_loadu_si512(q) : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
    return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};

// {s0 x8, s1 x8} from two floats in the low lanes of v.
KV_AVX512 inline __m512 SpreadPair(__m128 v) {
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}
// The fp16 scales of a block pair, {d0 x8, d1 x8} (d1 = 0 without a second block):
// one masked load of the pair's words (the scales are words 0 and kBlockWords; the
// mask keeps the load inside the pair), one word permute, one conversion, instead of
// two scalar loads merged in a general register: 21 instead of 25 instructions a pair
// in the decode loop (matvec_bench --threads 2: 95-101% -> 100-102% of a read).
template <typename B>
KV_AVX512 inline __m512 WeightScales(const void* row, int64_t b, bool pair) {
  static_assert(B::kBlockWords < 32);
  const auto* block = static_cast<const uint8_t*>(row) + b * 2 * B::kBlockWords;
  const __mmask32 words = pair ? static_cast<__mmask32>((uint64_t{1} << (B::kBlockWords + 1)) - 1) : __mmask32{1};
  const __m512i raw = _mm512_maskz_loadu_epi16(words, block);
  const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
                                       B::kBlockWords, B::kBlockWords, B::kBlockWords, B::kBlockWords, B::kBlockWords,
                                       B::kBlockWords, B::kBlockWords, B::kBlockWords, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, raw)));
}
// The prefill tiles' weights and scales; a kQ8_0Rows row keeps each chunk's scales
// before its values (model/quant.h). A pair never straddles two chunks.
template <typename B>
KV_AVX512 inline __m512i TileWeights(const void* row, int64_t n, int64_t b, bool pair) {
  if constexpr (std::is_same_v<B, Q8RowsBlocks>) return B::Weights(static_cast<const uint8_t*>(row) + Q8_0RowsValuesOffset(n / 32, b), 0, pair);
  else return B::Weights(row, b, pair);
}
template <typename B>
KV_AVX512 inline __m512 TileWeightScales(const void* row, int64_t b, bool pair) {
  if constexpr (std::is_same_v<B, Q8RowsBlocks>) {
    const uint8_t* scales = static_cast<const uint8_t*>(row) + Q8_0RowsScaleOffset(b);
    uint32_t bits = 0;
    if (pair) std::memcpy(&bits, scales, 4);
    else std::memcpy(&bits, scales, 2);
    return SpreadPair(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(bits))));
  } else {
    return WeightScales<B>(row, b, pair);
  }
}
KV_AVX512 inline __m512 ActivationScales(const float* xs, int64_t b, bool pair) {
  // _mm_loadl_epi64 is an unaligned 8-byte load (_mm_load_sd would be a misaligned double).
  return SpreadPair(pair ? _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xs + b))) : _mm_load_ss(xs + b));
}
KV_AVX512 inline __m512i ActivationBytes(const int8_t* xq, int64_t b, bool pair) {
  return pair ? _mm512_loadu_si512(xq + b * 32) : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32)));
}
// -offset x (sums of four activation bytes): the accumulator's starting value.
template <typename B>
KV_AVX512 inline __m512i NegatedOffset(__m512i xv) {
  const __m512i c = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(B::kOffset)), xv);
  return _mm512_sub_epi32(_mm512_setzero_si512(), c);
}

// One block pair (or a last single block) of a row, scaled: 16 float partial sums.
template <typename B>
KV_AVX512 inline __m512 QuantPair(const void* w, const int8_t* xq, const float* xs, int64_t b, bool pair) {
  const __m512i xv = ActivationBytes(xq, b, pair);
  const __m512i s = _mm512_dpbusd_epi32(NegatedOffset<B>(xv), B::Weights(w, b, pair), xv);
  const __m512 scale = _mm512_mul_ps(WeightScales<B>(w, b, pair), ActivationScales(xs, b, pair));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(s), scale);
}

// Decode: one row, two block pairs per step into two accumulators (one add chain
// would bound the loop by its latency).
template <typename B>
KV_AVX512 float DotQuant(const void* w, const int8_t* xq, const float* xs, int64_t n) {
  const int64_t nb = n / 32;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    acc0 = _mm512_add_ps(acc0, QuantPair<B>(w, xq, xs, b, true));
    acc1 = _mm512_add_ps(acc1, QuantPair<B>(w, xq, xs, b + 2, true));
  }
  for (; b < nb; b += 2) acc0 = _mm512_add_ps(acc0, QuantPair<B>(w, xq, xs, b, b + 1 < nb));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

KV_AVX512 float DotQ8_0(const void* w, const int8_t* xq, const float* xs, int64_t n) { return DotQuant<Q8Blocks>(w, xq, xs, n); }
KV_AVX512 float DotQ4_0(const void* w, const int8_t* xq, const float* xs, int64_t n) { return DotQuant<Q4Blocks>(w, xq, xs, n); }

// Decode over kQ8_0Rows rows. Per eight blocks of a row: four 64-byte loads of values
// (unsigned by w ^ 0x80 as above), four VPDPBUSD against the activation, the eight
// fp16 scales from one 16-byte load times the activation's eight scales in one
// multiply, spread over each block pair's lanes by a permute, and four FMAs into four
// accumulators (one chain would bound the loop by its latency). The offset's share,
// 128 x d_w x d_x x sum(x) per block, depends on the row only through d_w: it is
// accumulated as d_w x c with c = 128 d_x sum(x) worked out once per call, and
// subtracted at the end. About 6 instructions a block pair against 21 for Q8_0's
// interleaved blocks; in cache (matvec_bench's last table, one thread) 106 vs 42 GB/s
// on rows of 2048, 70 vs 38 on rows of 576 (two groups and a masked pair, values not
// 64-byte aligned).
constexpr int64_t kMaxRowBlocks = 4096;  // rows of up to 131072 values

// c[b] = 128 x xs[b] x (sum of block b's activation bytes).
KV_AVX512 void OffsetShares(const int8_t* xq, const float* xs, int64_t nb, float* c) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i v = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32)));
    c[b] = 128.0f * xs[b] * static_cast<float>(_mm512_reduce_add_epi32(_mm512_madd_epi16(v, _mm512_set1_epi16(1))));
  }
}

// Blocks [b, b + count) of a row, count 1..8 (kFull: 8, no masks).
template <bool kFull>
KV_AVX512 inline void RowsGroup(const int8_t* q, const uint8_t* scales, const int8_t* xq, const float* xs, const float* c, int64_t b,
                                int count, __m512* acc, __m256* corr) {
  const __mmask8 live = kFull ? __mmask8{0xFF} : static_cast<__mmask8>((1u << count) - 1);
  const __m128i dw_bits = kFull ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 2 * b))
                                : _mm_maskz_loadu_epi16(live, scales + 2 * b);
  const __m256 dw = _mm256_cvtph_ps(dw_bits);  // blocks past count: 0, so they add nothing
  *corr = _mm256_fmadd_ps(dw, kFull ? _mm256_loadu_ps(c + b) : _mm256_maskz_loadu_ps(live, c + b), *corr);
  const __m512 d = _mm512_castps256_ps512(_mm256_mul_ps(dw, kFull ? _mm256_loadu_ps(xs + b) : _mm256_maskz_loadu_ps(live, xs + b)));
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int p = 0; p < 4; ++p) {
    if (!kFull && 2 * p >= count) break;
    const int8_t* wp = q + (b + 2 * p) * 32;
    const int8_t* xp = xq + (b + 2 * p) * 32;
    __m512i wv, xv;
    if (kFull) {
      wv = _mm512_loadu_si512(wp);
      xv = _mm512_loadu_si512(xp);
    } else {
      const __mmask64 bytes = 2 * p + 1 < count ? ~__mmask64{0} : __mmask64{0xFFFFFFFF};
      wv = _mm512_maskz_loadu_epi8(bytes, wp);
      xv = _mm512_maskz_loadu_epi8(bytes, xp);
    }
    const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(wv, flip), xv);
    const __m512i pair_lanes = _mm512_set_epi32(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1,
                                                2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p);
    acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(pair_lanes, d), acc[p]);
  }
}

// DotQ8_0Row prefetches in software four full chunks (4,352 bytes) ahead of its
// loads. On the Zen 5 this was tuned on, the hardware prefetcher alone keeps a kQ8_0Rows
// row read from memory at only 63-90% of a plain read of the same bytes wherever it
// ends in a part-chunk (3,584, 5,632, 11,008 values...) and at 80-84% on TinyLlama's
// 2,048-value rows in its decode steps (`decode_bench --phases`); prefetched, 111-113%
// and 86-97% (some shapes faster than the plain read: docs/bench-decode.md).
// The distance runs past the row's end into the next rows, which the same thread reads
// next. Prefetching every row, short ones included, was measured worth it in the eighth
// pass (TinyLlama 1.03x; SmolLM2 1.02-1.10x, both orders). The distance, in decode steps
// alternated in one process (`decode_bench --compare-row-prefetch 3/3,4/4` and the
// reverse; ninth pass): 4 chunks against 3 made SmolLM2 1.05-1.07x faster at one thread
// and 1.00-1.04x at two (its rows of 576 values most: 3/4 against 3/3 1.03-1.05x at one
// thread), TinyLlama level (0.99-1.02x); 9 chunks on the short rows was no better than 3.
// Rows of a chunk or more and shorter ones have their own constants so that
// --compare-row-prefetch can set them apart.
constexpr size_t kRowPrefetchAhead = 4 * kQ8_0RowsChunkBytes;
constexpr size_t kShortRowPrefetchAhead = 4 * kQ8_0RowsChunkBytes;

// The address may lie past the end of the weights (the last row's lookahead): formed as
// an integer, since a pointer that far past its object would be undefined behaviour,
// and a prefetch of an address that is not mapped does not fault.
template <PrefetchTo kTo>
KV_AVX512 inline void PrefetchLine(const uint8_t* p, size_t offset) {
  PrefetchAddress<kTo>(reinterpret_cast<uintptr_t>(p) + offset);
}

// A row chunk by chunk (model/quant.h): each chunk's scales, then its values, so the
// loads run forward through the row. A full chunk is 17 lines: each group of 8 blocks
// prefetches 4, the chunk's end the 17th (kAhead > 0). Returns the row's partial sums,
// whose 16 lanes add up to its product: the horizontal sum is left to the caller, which
// may fold several rows' into one.
template <size_t kAhead, PrefetchTo kTo = PrefetchTo::kL1>
__attribute__((always_inline)) KV_AVX512 inline __m512 RowSums(const uint8_t* row, const int8_t* xq, const float* xs, const float* c,
                                                               int64_t nb) {
  static_assert(kQ8_0RowsChunkBytes == 17 * 64 && kQ8_0RowsChunkBlocks == 32, "the prefetch pattern covers one 17-line chunk");
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  __m256 corr = _mm256_setzero_ps();
  int64_t first = 0;
  for (; first + kQ8_0RowsChunkBlocks <= nb; first += kQ8_0RowsChunkBlocks) {
    const uint8_t* scales = row + first * sizeof(BlockQ8_0);
    const auto* q = reinterpret_cast<const int8_t*>(scales + 2 * kQ8_0RowsChunkBlocks);
    #pragma GCC unroll 4
    for (int64_t b = 0; b < kQ8_0RowsChunkBlocks; b += 8) {
      if constexpr (kAhead > 0)
        for (int i = 0; i < 4; ++i) PrefetchLine<kTo>(scales, kAhead + 64 * (b / 2 + i));
      RowsGroup<true>(q, scales, xq + first * 32, xs + first, c + first, b, 8, acc, &corr);
    }
    if constexpr (kAhead > 0) PrefetchLine<kTo>(scales, kAhead + 16 * 64);
  }
  if (first < nb) {
    const int64_t count = nb - first;
    const uint8_t* scales = row + first * sizeof(BlockQ8_0);
    const auto* q = reinterpret_cast<const int8_t*>(scales + 2 * count);
    const size_t tail_bytes = count * sizeof(BlockQ8_0);
    if constexpr (kAhead > 0)
      for (size_t i = 0; i < tail_bytes + 64; i += 64) PrefetchLine<kTo>(scales, kAhead + i);
    int64_t b = 0;
    for (; b + 8 <= count; b += 8) RowsGroup<true>(q, scales, xq + first * 32, xs + first, c + first, b, 8, acc, &corr);
    if (b < count) RowsGroup<false>(q, scales, xq + first * 32, xs + first, c + first, b, static_cast<int>(count - b), acc, &corr);
  }
  const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
  return _mm512_sub_ps(sum, _mm512_zextps256_ps512(corr));
}

template <size_t kAhead, PrefetchTo kTo>
KV_AVX512 float DotQ8_0Row(const uint8_t* row, const int8_t* xq, const float* xs, const float* c, int64_t n) {
  return _mm512_reduce_add_ps(RowSums<kAhead, kTo>(row, xq, xs, c, n / 32));
}

// y[r] for four rows' sums s[0..3]: folded pairwise, rows 0 and 1 (2 and 3) to 8 lanes
// each side by side, then to 4 lanes each, one row per 128-bit quarter, then each
// quarter's sum into its first lane.
KV_AVX512 inline void StoreFourSums(const __m512* s, float* y) {
  const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(s[0], s[1], 0x44), _mm512_shuffle_f32x4(s[0], s[1], 0xEE));
  const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(s[2], s[3], 0x44), _mm512_shuffle_f32x4(s[2], s[3], 0xEE));
  __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xDD));
  q = _mm512_add_ps(q, _mm512_permute_ps(q, 0x4E));
  q = _mm512_add_ps(q, _mm512_permute_ps(q, 0xB1));
  const __m512i firsts = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
  _mm_storeu_ps(y, _mm512_castps512_ps128(_mm512_permutexvar_ps(firsts, q)));
}

// Rows one after another, each read front to back, with no software prefetch and no
// call per row; four rows' sums share one horizontal reduction. The Zen 4 set's loop:
// against a call and a reduction per row (DotQ8_0Row<0>), decode steps alternated in
// one process (decode_bench --compare-avx512-sets against a temporary copy) ran
// 1.07-1.12x faster for SmolLM2 q8_0 (rows of 576 values, ~60 instructions of fixed
// cost a row on ~600 bytes) and 1.00-1.04x for TinyLlama at 1 and 2 threads. Taking
// four short rows side by side instead, as kAvx512 does, made the Zen 4 read them at a
// third of a plain read (four streams at once; see kAvx512Zen4).
KV_AVX512 void RowsInOrder(const uint8_t* base, size_t row_bytes, int64_t rows, const int8_t* xq, const float* xs, const float* c,
                           int64_t nb, float* y) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    __m512 s[4];
    for (int k = 0; k < 4; ++k) s[k] = RowSums<0>(base + (r + k) * row_bytes, xq, xs, c, nb);
    StoreFourSums(s, y + r);
  }
  for (; r < rows; ++r) y[r] = _mm512_reduce_add_ps(RowSums<0>(base + r * row_bytes, xq, xs, c, nb));
}

// Short rows (fewer than a chunk's 32 blocks: one part-chunk, nb scales then nb x 32
// values; SmolLM2's 576-value rows, Qwen2.5-0.5B's 896) kShortRowGroup rows at a time.
// One row at a time, such a row's fixed costs (the offset correction and its two
// horizontal sums, a masked tail, the call) weigh on ~600 bytes of weights: from
// memory 84% of a plain read against 97% for rows of 1,536 (`matvec_bench --shapes
// 3072x576,576x1536`). Here the activation's share of each block pair is worked out
// once per call: its bytes and VPDPBUSD's starting value, -128 x the sum of each
// lane's four bytes, which cancels the unsigned offset of w ^ 0x80 exactly in int32,
// so a row needs no correction; the group's rows share each activation load, and
// their four sums come out of one transposing reduction.
constexpr int kShortRowGroup = 4;

struct ShortRowActivation {
  __m512i bytes[kQ8_0RowsChunkBlocks / 2];
  __m512i start[kQ8_0RowsChunkBlocks / 2];
};

KV_AVX512 inline void PrepareShortRowActivation(const int8_t* xq, int64_t nb, ShortRowActivation* a) {
  for (int64_t b = 0; b < nb; b += 2) {
    const __m512i xv = ActivationBytes(xq, b, b + 1 < nb);
    a->bytes[b / 2] = xv;
    a->start[b / 2] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(0x80)), xv));
  }
}

// Blocks [b, b + count) of R rows, count 1..8 (kFull: 8, no masks).
template <int R, bool kFull>
KV_AVX512 inline void ShortRowsBlocks(const uint8_t* row0, size_t row_bytes, int64_t nb, const ShortRowActivation& a, const float* xs,
                                      int64_t b, int count, __m512 (*acc)[2]) {
  const __mmask8 live = kFull ? __mmask8{0xFF} : static_cast<__mmask8>((1u << count) - 1);
  const __m256 dx = kFull ? _mm256_loadu_ps(xs + b) : _mm256_maskz_loadu_ps(live, xs + b);
  __m512 d[R];
  for (int r = 0; r < R; ++r) {
    const uint8_t* scales = row0 + r * row_bytes + 2 * b;
    const __m128i bits = kFull ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)) : _mm_maskz_loadu_epi16(live, scales);
    d[r] = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtph_ps(bits), dx));  // blocks past count: 0
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int p = 0; p < 4; ++p) {
    if (!kFull && 2 * p >= count) break;
    const int64_t pair = b / 2 + p;
    const __mmask64 bytes = kFull || 2 * p + 1 < count ? ~__mmask64{0} : __mmask64{0xFFFFFFFF};
    const __m512i lanes = _mm512_set_epi32(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1,
                                           2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p);
    for (int r = 0; r < R; ++r) {
      const int8_t* wp = reinterpret_cast<const int8_t*>(row0 + r * row_bytes + 2 * nb) + (b + 2 * p) * 32;
      const __m512i wv = kFull ? _mm512_loadu_si512(wp) : _mm512_maskz_loadu_epi8(bytes, wp);
      const __m512i sum = _mm512_dpbusd_epi32(a.start[pair], _mm512_xor_si512(wv, flip), a.bytes[pair]);
      acc[r][p & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(lanes, d[r]), acc[r][p & 1]);
    }
  }
}

// y[0..R) for R rows from row0 on. REQUIRES: nb < kQ8_0RowsChunkBlocks.
template <int R, size_t kAhead, PrefetchTo kTo>
KV_AVX512 inline void ShortRows(const uint8_t* row0, size_t row_bytes, int64_t nb, const ShortRowActivation& a, const float* xs, float* y) {
  PrefetchLines<kTo>(reinterpret_cast<uintptr_t>(row0) + kAhead, R * row_bytes);
  __m512 acc[R][2];
  for (auto& row : acc) row[0] = row[1] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) ShortRowsBlocks<R, true>(row0, row_bytes, nb, a, xs, b, 8, acc);
  if (b < nb) ShortRowsBlocks<R, false>(row0, row_bytes, nb, a, xs, b, static_cast<int>(nb - b), acc);
  if constexpr (R == 4) {
    __m512 s[4];
    for (int r = 0; r < 4; ++r) s[r] = _mm512_add_ps(acc[r][0], acc[r][1]);
    StoreFourSums(s, y);
  } else {
    for (int r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
  }
}

// kAhead: the prefetch distance for rows of a chunk or more, kShortAhead for shorter
// ones (rows of a part-chunk only); both 0: no software prefetch at all, every row
// taken in order by RowsInOrder (the Zen 4 set). Otherwise kGroupShortRows: shorter
// rows kShortRowGroup at a time (false: one at a time, as long rows; kept for
// decode_bench --compare-short-rows), and kTo: the cache level the lookahead fills.
// The rows' first kAhead (kShortAhead) bytes, which no lookahead covers, are asked for
// at once on entry, into L1 whatever kTo: a thread's first call in a decode product
// starts on cold lines (decode steps 1.004-1.044x faster, SmolLM2 and TinyLlama q8_0 at
// 1 and 2 threads, two alternations in one process against a copy without it; on the
// Intel VM, into L2 instead was 1.00-1.015x slower).
template <size_t kAhead, size_t kShortAhead, bool kGroupShortRows = true, PrefetchTo kTo = PrefetchTo::kL1>
KV_AVX512 void DotQ8_0Rows(const void* w, size_t row_bytes, int64_t rows, const int8_t* xq, const float* xs, int64_t n, float* y) {
  const int64_t nb = n / 32;
  KV_CHECK_MSG(nb <= kMaxRowBlocks, "kQ8_0Rows decode: row longer than the kernel's activation buffer");
  const auto* base = static_cast<const uint8_t*>(w);
  constexpr bool kInOrder = kAhead == 0 && kShortAhead == 0;
  if constexpr (!kInOrder) {
    const size_t head = std::min(rows * row_bytes, nb < kQ8_0RowsChunkBlocks ? kShortAhead : kAhead);
    PrefetchLines<PrefetchTo::kL1>(reinterpret_cast<uintptr_t>(base), head);
    if (kGroupShortRows && nb < kQ8_0RowsChunkBlocks) {
      ShortRowActivation a;
      PrepareShortRowActivation(xq, nb, &a);
      int64_t r = 0;
      for (; r + kShortRowGroup <= rows; r += kShortRowGroup) ShortRows<kShortRowGroup, kShortAhead, kTo>(base + r * row_bytes, row_bytes, nb, a, xs, y + r);
      for (; r < rows; ++r) ShortRows<1, kShortAhead, kTo>(base + r * row_bytes, row_bytes, nb, a, xs, y + r);
      return;
    }
  }
  alignas(64) float c[kMaxRowBlocks];
  OffsetShares(xq, xs, nb, c);
  if constexpr (kInOrder) {
    RowsInOrder(base, row_bytes, rows, xq, xs, c, nb, y);
  } else if (nb < kQ8_0RowsChunkBlocks) {
    for (int64_t r = 0; r < rows; ++r) y[r] = DotQ8_0Row<kShortAhead, kTo>(base + r * row_bytes, xq, xs, c, n);
  } else {
    for (int64_t r = 0; r < rows; ++r) y[r] = DotQ8_0Row<kAhead, kTo>(base + r * row_bytes, xq, xs, c, n);
  }
}

// Prefill: R rows x kDotTile tokens per block pair. Per token: its bytes, offset
// correction and scales (shared by the R rows); per row: its bytes and scales
// (shared by the tokens); per (row, token): one VPDPBUSD, a convert and two FMAs' worth.
template <typename B, int R, int T = kDotTile>
KV_AVX512 void QuantTileRows(const uint8_t* w, size_t row_bytes, const int8_t* xq, int64_t qs, const float* xs, int64_t ss,
                             int64_t n, float* out) {
  const int64_t nb = n / 32;
  __m512 acc[R][T];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b += 2) {
    const bool pair = b + 1 < nb;
    __m512i xv[T], init[T];
    __m512 xscale[T];
    for (int t = 0; t < T; ++t) {
      xv[t] = ActivationBytes(xq + t * qs, b, pair);
      init[t] = NegatedOffset<B>(xv[t]);
      xscale[t] = ActivationScales(xs + t * ss, b, pair);
    }
    for (int r = 0; r < R; ++r) {
      const void* row = w + r * row_bytes;
      const __m512i wv = TileWeights<B>(row, n, b, pair);
      const __m512 wscale = TileWeightScales<B>(row, b, pair);
      for (int t = 0; t < T; ++t) {
        const __m512 sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init[t], wv, xv[t]));
        acc[r][t] = _mm512_fmadd_ps(sum, _mm512_mul_ps(wscale, xscale[t]), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * kTileRows + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <typename B>
KV_AVX512 void QuantTile(const void* w, size_t row_bytes, int rows, const int8_t* xq, int64_t qs, const float* xs, int64_t ss,
                         int64_t n, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  switch (rows) {
    case 1: QuantTileRows<B, 1>(wb, row_bytes, xq, qs, xs, ss, n, out); break;
    case 2: QuantTileRows<B, 2>(wb, row_bytes, xq, qs, xs, ss, n, out); break;
    case 3: QuantTileRows<B, 3>(wb, row_bytes, xq, qs, xs, ss, n, out); break;
    default: QuantTileRows<B, 4>(wb, row_bytes, xq, qs, xs, ss, n, out); break;
  }
}

KV_AVX512 void ScaleAxpy(float scale, float a, const float* x, float* y, int64_t n) {
  const __m512 vs = _mm512_set1_ps(scale), va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_mul_ps(vs, _mm512_loadu_ps(y + i))));
  if (i < n) {
    const __mmask16 m = TailMask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(m, y + i))));
  }
}

// exp(x) for 16 lanes: 2^n * e^r with n = round(x / ln 2) and |r| <= ln 2 / 2 (a
// degree-6 Taylor polynomial, relative error ~1e-7); inputs below -100 give 0.
KV_AVX512 inline __m512 Exp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-100.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 in two parts, so r keeps its low bits.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Score chains per head and value chunks of 16 per pass, by group size: enough
// independent FMA chains to cover the FMA latency (a chain per head per chunk), within
// the 32 vector registers.
constexpr int ScoreChains(int g) { return g <= 4 ? 4 : 2; }
constexpr int ValueChunks(int g) { return g <= 4 ? 4 : 2; }

// Keys scored in one pass before their values are summed (a group's scores, up to
// 8 x 256 floats, stay in L1).
constexpr int64_t kAttendPassKeys = 256;

// Prefetches the lines of [p, p + bytes) (a stretch of KV the next steps read).
KV_AVX512 inline void PrefetchRange(const void* p, size_t bytes) {
  PrefetchLines<PrefetchTo::kL1>(reinterpret_cast<uintptr_t>(p), bytes);
}

// G query heads sharing a KV head against the keys of `spans`, up to kAttendPassKeys at
// a time in three passes: every score (16 keys per vector, each key vector loaded and
// widened once for the G heads), then one max, exponential and sum per head, then the
// values with the G heads' accumulators held in registers across all the keys. A
// decode step has one 16-key vector per block; folding the softmax and the values per
// block instead (as the kernel did until 2026-12-05) put a horizontal max, a branch and
// a load and store of every accumulator in each block, and the pass over the values
// ran one short dependency chain per block: SmolLM2's attention spent ~10 us a layer
// at a 128-token context on arithmetic that needs ~3. L: F32Load or F16Load.
// kPrefetch: each next stretch's keys and each stretch's values are prefetched in
// software while the scores are worked out (the Zen 5 tuning; on the Zen 4 the same
// attention ran 20-25% faster at one thread without it, 10-15% at two threads from
// 512 tokens on: docs/bench-decode.md, thirteenth pass).
template <typename L, int G, bool kPrefetch>
KV_AVX512 void AttendGroup(const float* q, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale, float* m,
                           float* sum, float* out) {
  constexpr int C = ScoreChains(G), P = ValueChunks(G);
  constexpr size_t kElem = L::kBytes;
  alignas(64) float e[G][kAttendPassKeys];
  KvSpan pieces[kAttendPassKeys];  // this pass's stretches, each at least one key
  int s = 0;
  int64_t s_at = 0;  // the next key: span s, key s_at within it
  while (s < num_spans) {
    int np = 0;
    int64_t total = 0;
    while (s < num_spans && total < kAttendPassKeys) {
      const KvSpan& sp = spans[s];
      const int64_t take = std::min(sp.n - s_at, kAttendPassKeys - total);
      if (take > 0) {
        pieces[np++] = {static_cast<const uint8_t*>(sp.k) + s_at * kElem, static_cast<const uint8_t*>(sp.v) + s_at * d * kElem, take};
        total += take;
        s_at += take;
      }
      if (s_at >= sp.n) {
        ++s;
        s_at = 0;
      }
    }
    if (total == 0) break;

    // Scores, scaled; lanes past a stretch's end are -inf in the running maxima and not stored.
    __m512 vmax[G];
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) vmax[g] = _mm512_set1_ps(-INFINITY);
    int64_t pos = 0;
    for (int pi = 0; pi < np; ++pi) {
      const KvSpan& pc = pieces[pi];
      // The next stretch's keys and this one's values are read after these scores.
      if constexpr (kPrefetch) {
        if (pi + 1 < np) PrefetchRange(pieces[pi + 1].k, ((d - 1) * k_stride + pieces[pi + 1].n) * kElem);
        PrefetchRange(pc.v, pc.n * d * kElem);
      }
      for (int64_t j0 = 0; j0 < pc.n; j0 += 16) {
        const __mmask16 live = TailMask(std::min<int64_t>(16, pc.n - j0));
        __m512 acc[G][C];
        #pragma GCC unroll 8
        for (int g = 0; g < G; ++g)
          #pragma GCC unroll 8
          for (int c = 0; c < C; ++c) acc[g][c] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + C <= d; i += C)
          #pragma GCC unroll 8
          for (int c = 0; c < C; ++c) {
            const __m512 kv = L::LoadMasked(pc.k, (i + c) * k_stride + j0, live);
            #pragma GCC unroll 8
            for (int g = 0; g < G; ++g) acc[g][c] = _mm512_fmadd_ps(_mm512_set1_ps(q[g * d + i + c]), kv, acc[g][c]);
          }
        for (; i < d; ++i) {
          const __m512 kv = L::LoadMasked(pc.k, i * k_stride + j0, live);
          #pragma GCC unroll 8
          for (int g = 0; g < G; ++g) acc[g][0] = _mm512_fmadd_ps(_mm512_set1_ps(q[g * d + i]), kv, acc[g][0]);
        }
        #pragma GCC unroll 8
        for (int g = 0; g < G; ++g) {
          __m512 sc = acc[g][0];
          #pragma GCC unroll 8
          for (int c = 1; c < C; ++c) sc = _mm512_add_ps(sc, acc[g][c]);
          sc = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), live, sc, _mm512_set1_ps(scale));
          vmax[g] = _mm512_max_ps(vmax[g], sc);
          _mm512_mask_storeu_ps(&e[g][pos + j0], live, sc);
        }
      }
      pos += pc.n;
    }

    // Softmax: one rescale per head if its max grew, then the exponentials and their sum.
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const float bm = std::max(m[g], _mm512_reduce_max_ps(vmax[g]));
      if (bm > m[g]) {
        const float r = std::exp(m[g] - bm);  // 0 before the first key
        sum[g] *= r;
        ScaleAxpy(r, 0.0f, out + g * d, out + g * d, d);  // out *= r
        m[g] = bm;
      }
      const __m512 mv = _mm512_set1_ps(m[g]);
      __m512 vs = _mm512_setzero_ps();
      for (int64_t p0 = 0; p0 < total; p0 += 16) {
        const __mmask16 live = TailMask(std::min<int64_t>(16, total - p0));
        const __m512 ev = _mm512_maskz_mov_ps(live, Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, &e[g][p0]), mv)));
        vs = _mm512_add_ps(vs, ev);
        _mm512_mask_storeu_ps(&e[g][p0], live, ev);
      }
      sum[g] += _mm512_reduce_add_ps(vs);
    }

    // Values: P chunks of 16 dimensions for the G heads in registers across the pass's keys.
    for (int64_t c0 = 0; c0 < d; c0 += 16 * P) {
      __mmask16 dm[P];
      __m512 o[G][P];
      #pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        const int64_t left = d - (c0 + 16 * p);
        dm[p] = left >= 16 ? static_cast<__mmask16>(0xFFFF) : left > 0 ? TailMask(left) : static_cast<__mmask16>(0);
        #pragma GCC unroll 8
        for (int g = 0; g < G; ++g) o[g][p] = _mm512_maskz_loadu_ps(dm[p], out + g * d + c0 + 16 * p);
      }
      pos = 0;
      for (int pi = 0; pi < np; ++pi) {
        const KvSpan& pc = pieces[pi];
        for (int64_t j = 0; j < pc.n; ++j)
          #pragma GCC unroll 8
          for (int p = 0; p < P; ++p) {
            const __m512 vv = L::LoadMasked(pc.v, j * d + c0 + 16 * p, dm[p]);
            #pragma GCC unroll 8
            for (int g = 0; g < G; ++g) o[g][p] = _mm512_fmadd_ps(_mm512_set1_ps(e[g][pos + j]), vv, o[g][p]);
          }
        pos += pc.n;
      }
      #pragma GCC unroll 8
      for (int p = 0; p < P; ++p)
        #pragma GCC unroll 8
        for (int g = 0; g < G; ++g) _mm512_mask_storeu_ps(out + g * d + c0 + 16 * p, dm[p], o[g][p]);
    }
  }
}

// Groups of up to eight heads at a time (Llama-3-8B, Mistral: 4; TinyLlama, Llama-3-70B:
// 8; Qwen2.5: 7; SmolLM2-135M: 3).
template <typename L, bool kPrefetch>
KV_AVX512 void AttendHeads(const float* q, int heads, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale,
                           float* m, float* sum, float* out) {
  for (int h0 = 0; h0 < heads; h0 += 8) {
    const float* qg = q + h0 * d;
    float* og = out + h0 * d;
    switch (std::min(8, heads - h0)) {
      case 1: AttendGroup<L, 1, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      case 2: AttendGroup<L, 2, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      case 3: AttendGroup<L, 3, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      case 4: AttendGroup<L, 4, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      case 5: AttendGroup<L, 5, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      case 6: AttendGroup<L, 6, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      case 7: AttendGroup<L, 7, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
      default: AttendGroup<L, 8, kPrefetch>(qg, spans, num_spans, k_stride, d, scale, m + h0, sum + h0, og); break;
    }
  }
}

template <bool kPrefetch>
KV_AVX512 void Attend(const float* q, int heads, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale,
                      float* m, float* sum, float* out) {
  AttendHeads<F32Load, kPrefetch>(q, heads, spans, num_spans, k_stride, d, scale, m, sum, out);
}
template <bool kPrefetch>
KV_AVX512 void AttendF16(const float* q, int heads, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale,
                         float* m, float* sum, float* out) {
  AttendHeads<F16Load, kPrefetch>(q, heads, spans, num_spans, k_stride, d, scale, m, sum, out);
}

// Saturated to +-65504 as DotKernels::to_f16 says; min/max return their second operand
// when either is NaN, so x goes second and NaN stays NaN.
KV_AVX512 inline __m512 SaturateF16(__m512 x) {
  return _mm512_max_ps(_mm512_set1_ps(-kF16Max), _mm512_min_ps(_mm512_set1_ps(kF16Max), x));
}
KV_AVX512 void ToF16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        _mm512_cvtps_ph(SaturateF16(_mm512_loadu_ps(x + i)), _MM_FROUND_TO_NEAREST_INT));
  if (i < n) {
    const __mmask16 m = TailMask(n - i);
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(SaturateF16(_mm512_maskz_loadu_ps(m, x + i)), _MM_FROUND_TO_NEAREST_INT));
  }
}

// Exp's clamping keeps the extremes finite: silu(g) -> 0 for g << 0 and g for g >> 0.
KV_AVX512 void SiluMul(const float* gate, const float* up, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = i + 16 <= n ? static_cast<__mmask16>(0xFFFF) : TailMask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, Exp(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// Two blocks of 32 at a time: |x| max per block, d = max / 127, q = round(x / d).
KV_AVX512 void QuantizeQ8(const float* x, int64_t n, int8_t* qs, float* scales) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    scales[b] = d;
    const __m512 vid = _mm512_set1_ps(id);
    // Default rounding (to nearest, ties to even), as std::nearbyint in the scalar version.
    const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)));
    const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * 32), q0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * 32 + 16), q1);
  }
}

const DotKernels kAvx512 = {DotF32,
                            DotF16,
                            DotBF16,
                            DotQ8_0,
                            DotQ4_0,
                            FloatTile<F32Load>,
                            FloatTile<F16Load>,
                            FloatTile<BF16Load>,
                            QuantTile<Q8Blocks>,
                            QuantTile<Q4Blocks>,
                            DotQ8_0Rows<kRowPrefetchAhead, kShortRowPrefetchAhead>,
                            QuantTile<Q8RowsBlocks>,
                            ScaleAxpy,
                            Attend<true>,
                            AttendF16<true>,
                            ToF16,
                            SiluMul,
                            "avx512-vnni",
                            /*prefers_q8_0_rows=*/true,
                            /*software_prefetch=*/true};

// The same kernels but for kQ8_0Rows decode, which reads its rows one after another
// (RowsInOrder), and attention: neither issues software prefetches, leaving the
// streams to the hardware prefetchers (nor does the backend ahead of attention:
// software_prefetch). On the Zen 4 this was measured on (an EPYC VM, 2026-12-06;
// `matvec_bench --shapes`, one thread, from memory), kAvx512's decode loop ran far
// below a plain read: four short rows at a time (four interleaved streams 612 bytes
// apart) 26-31% of the read against 73-80% one row at a time, and rows of 1,536 values
// 50-54% with the four-chunk software prefetch against 68-73% without it. kAvx512's choices were measured on a Zen 5, where
// they were worth 3-15% (docs/bench-decode.md, eighth to eleventh passes).
const DotKernels kAvx512Zen4 = [] {
  DotKernels k = kAvx512;
  k.q8_0_rows = DotQ8_0Rows<0, 0>;
  k.attend = Attend<false>;
  k.attend_f16 = AttendF16<false>;
  k.name = "avx512-vnni-zen4";
  k.software_prefetch = false;
  return k;
}();

// The same kernels but for where kQ8_0Rows decode's lookahead puts its lines: in L2
// (prefetcht1), not L1. On the Intel CPU this was measured on (a Xeon, family 6 model
// 207, under KVM, 2026-12-06), decode steps alternated in one process against kAvx512
// ran 1.01-1.08x faster (`decode_bench --compare-avx512-sets`, SmolLM2 and TinyLlama
// q8_0 at 1 and 2 threads, two runs; one of eight pairs 0.94x, in a spell when
// SmolLM2's weights ran faster than a read), and `matvec_bench --shapes` read rows of
// 576, 1,536 and 5,632 values 3-4% faster. Prefetches into L1 occupy the core's few L1
// miss buffers until their lines arrive, which the loop's own loads then wait behind;
// L2's streamer takes the rest. On the Zen 5 the other tuning came from, prefetcht1
// had been the slower (eighth pass), so this set is Intel's only. Eight chunks ahead
// instead of four: level (0.995-1.012x); every long row in order as the Zen 4 set does,
// with this prefetch: level (0.994-1.003x); attention without its prefetches: 0.98-1.01x
// at 128 tokens, 0.96-0.98x at 1,000, so attention keeps them.
// The float decode rows (f32, f16, bf16), which prefetch nothing in the other sets, get
// the same lookahead 4 KiB ahead: TinyLlama f16 decode steps 1.317x / 1.306x faster at
// 1 / 2 threads than with kAvx512's (`--compare-avx512-sets`, 32 pairs; from 74-77% of
// the read limit to 96-106%). Not measured on an AMD CPU, so theirs are left alone.
const DotKernels kAvx512Intel = [] {
  DotKernels k = kAvx512;
  k.q8_0_rows = DotQ8_0Rows<kRowPrefetchAhead, kShortRowPrefetchAhead, true, PrefetchTo::kL2>;
  k.f32 = DotF32Ahead;
  k.f16 = DotF16Ahead;
  k.bf16 = DotBF16Ahead;
  k.name = "avx512-vnni-intel";
  return k;
}();

bool HasAvx512Vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma");
}

}  // namespace

const DotKernels* Avx512DotKernels() { return HasAvx512Vnni() ? &kAvx512 : nullptr; }
const DotKernels* Avx512Zen4DotKernels() { return HasAvx512Vnni() ? &kAvx512Zen4 : nullptr; }
const DotKernels* Avx512IntelDotKernels() { return HasAvx512Vnni() ? &kAvx512Intel : nullptr; }

QuantizeActivationFn Avx512QuantizeActivationQ8() { return Avx512DotKernels() ? &QuantizeQ8 : nullptr; }

namespace {
template <int kLong, int kShort>
DotKernels RowPrefetchVariant() {
  static const std::string name = fmt::format("avx512-vnni, kQ8_0Rows prefetch {}/{} chunks", kLong, kShort);
  DotKernels k = kAvx512;
  k.q8_0_rows = DotQ8_0Rows<kLong * kQ8_0RowsChunkBytes, kShort * kQ8_0RowsChunkBytes>;
  k.name = name.c_str();
  return k;
}
template <int kLong, int... kShort>
void AddRowPrefetchVariants(std::vector<DotKernels>* out) {
  (out->push_back(RowPrefetchVariant<kLong, kShort>()), ...);
}
}  // namespace

const DotKernels* Avx512ShortRowsOneAtATime() {
  static const DotKernels k = [] {
    DotKernels v = kAvx512;
    v.q8_0_rows = DotQ8_0Rows<kRowPrefetchAhead, kShortRowPrefetchAhead, false>;
    v.name = "avx512-vnni, kQ8_0Rows short rows one at a time";
    return v;
  }();
  return Avx512DotKernels() ? &k : nullptr;
}

const std::vector<DotKernels>& Avx512RowPrefetchVariants() {
  static const std::vector<DotKernels> all = [] {
    std::vector<DotKernels> v;
    if (Avx512DotKernels() == nullptr) return v;
    AddRowPrefetchVariants<2, 3, 4, 6, 9>(&v);
    AddRowPrefetchVariants<3, 3, 4, 6, 9>(&v);
    AddRowPrefetchVariants<4, 3, 4, 6, 9>(&v);
    AddRowPrefetchVariants<6, 3, 4, 6, 9>(&v);
    return v;
  }();
  return all;
}

}  // namespace kvserve
