// CPU dot-product kernels in the weights' file precision. Activations are float32,
// or Q8 blocks (32 int8 + a float scale) when the weights are Q8_0/Q4_0, so
// quantized rows are never dequantized as a whole. AVX2/FMA/F16C variants are
// chosen at run time (the binary still runs on CPUs without them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/tensor.h"

namespace kvserve {

// A float row quantized to Q8 blocks: qs[n], scales[n / 32]. REQUIRES: n % 32 == 0.
void QuantizeActivationQ8(const float* x, int64_t n, int8_t* qs, float* scales);

// Keys and values of one stretch of a KV block piece, for DotKernels::attend: keys are
// stored transposed, element i of key j at k[i * k_stride + j] (a KV block keeps its keys
// dimension-major, so the scores of consecutive keys are one vector FMA per dimension,
// with no horizontal sums); value j is the row of d at v + j * d. Floats or f16 bits, by
// the kernel.
struct KvSpan {
  const void* k;
  const void* v;
  int64_t n;  // keys
};

struct DotKernels {
  float (*f32)(const float* w, const float* x, int64_t n);
  float (*f16)(const uint16_t* w, const float* x, int64_t n);
  float (*bf16)(const uint16_t* w, const float* x, int64_t n);
  // w: n / 32 Q8_0 (or Q4_0) blocks; activation as QuantizeActivationQ8 produced it.
  float (*q8_0)(const void* w, const int8_t* xq, const float* xs, int64_t n);
  float (*q4_0)(const void* w, const int8_t* xq, const float* xs, int64_t n);
  // Prefill micro-kernels: `rows` (1..kTileRows) weight rows, row r at w + r * row_bytes,
  // against kDotTile activation rows (row t at x + t * x_stride; Q8 scales at
  // xs + t * xs_stride); out[t * kTileRows + r]. Each weight load feeds kDotTile
  // products and each activation load `rows`, so batched prefill is compute-bound.
  void (*f32_tile)(const void* w, size_t row_bytes, int rows, const float* x, int64_t x_stride, int64_t n, float* out);
  void (*f16_tile)(const void* w, size_t row_bytes, int rows, const float* x, int64_t x_stride, int64_t n, float* out);
  void (*bf16_tile)(const void* w, size_t row_bytes, int rows, const float* x, int64_t x_stride, int64_t n, float* out);
  void (*q8_0_tile)(const void* w, size_t row_bytes, int rows, const int8_t* xq, int64_t xq_stride, const float* xs,
                    int64_t xs_stride, int64_t n, float* out);
  void (*q4_0_tile)(const void* w, size_t row_bytes, int rows, const int8_t* xq, int64_t xq_stride, const float* xs,
                    int64_t xs_stride, int64_t n, float* out);
  // kQ8_0Rows weights (chunks of scales, then values: model/quant.h). Decode:
  // `rows` consecutive rows, row r at w + r * row_bytes, y[r] = dot(row r, x); the
  // activation's per-block sums are worked out once for all of them. Tile: as q8_0_tile.
  void (*q8_0_rows)(const void* w, size_t row_bytes, int64_t rows, const int8_t* xq, const float* xs, int64_t n, float* y);
  void (*q8_0_rows_tile)(const void* w, size_t row_bytes, int rows, const int8_t* xq, int64_t xq_stride, const float* xs,
                         int64_t xs_stride, int64_t n, float* out);
  // y = y * scale + a * x (attention's value accumulation with online-softmax rescale).
  void (*scale_axpy)(float scale, float a, const float* x, float* y, int64_t n);
  // The query heads that share one KV head (a GQA group, `heads` of them) against the
  // keys and values of `num_spans` spans (KvSpan, in order), each head folded into its
  // own online softmax: with s_j = scale * q_h.k_j, m[h] is the running max of head h's
  // scores, sum[h] the running sum of exp(s - m[h]) and out[h * d, (h + 1) * d) the
  // running sum of exp(s - m[h]) v; both are rescaled when m[h] grows. Start with
  // m = -inf, sum = 0, out = 0; head h's attention output is its out / sum[h] after the
  // last key. q holds the heads' rows of d floats one after another. A group's heads are
  // scored together so each key and value is loaded (and, in f16, converted) once for
  // all of them; a call takes a run of blocks at once so that a decode step's few keys
  // per block pay for one softmax pass and one pass over the values, not one per block.
  void (*attend)(const float* q, int heads, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale,
                 float* m, float* sum, float* out);
  // The same over an f16 KV cache (IEEE half bits), converted as it is read.
  void (*attend_f16)(const float* q, int heads, const KvSpan* spans, int num_spans, int64_t k_stride, int64_t d, float scale,
                     float* m, float* sum, float* out);
  // y[i] = x[i] as f16, rounded to nearest even (FloatToFp16), saturated to +-65504 (NaN
  // stays NaN): the f16 KV cache's writes. A key beyond f16's range (rare, but a model
  // with large activations has them) would otherwise be stored as infinity and turn its
  // scores, then the whole softmax, into NaN; saturated, it only loses its excess.
  void (*to_f16)(const float* x, uint16_t* y, int64_t n);
  // out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) (SwiGLU's activation).
  // out may alias gate or up.
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  const char* name;
  // Whether this set reads kQ8_0Rows faster than Q8_0, so copied Q8_0 weights are worth
  // re-laying out (PrepareWeightsForCpu). The AVX-512 set does: a row's values are whole
  // aligned vectors and eight blocks' scales come from one load (in cache 2.5x the
  // rate of its Q8_0 loop on rows of 2048); the others use plain loops for kQ8_0Rows.
  bool prefers_q8_0_rows;
  // Whether the backend asks for the first KV block of an attention run in software
  // before the kernel starts on it (the kernels' own prefetching is theirs to choose).
  // Off for the Zen 4 set, whose loops leave memory to the hardware prefetchers.
  bool software_prefetch;
};

inline constexpr int kDotTile = 4;   // activation rows (tokens) per prefill tile
inline constexpr int kTileRows = 4;  // weight rows per prefill tile

// The best kernels this CPU supports (computed once): AVX-512 VNNI, else AVX2, else
// scalar. With AVX-512 there are three sets that differ only in how decode reads memory:
// "avx512-vnni", tuned on a Zen 5 (kQ8_0Rows rows under 1,024 values four at a time,
// software prefetches into L1 ahead of the kQ8_0Rows loop and of attention);
// "avx512-vnni-zen4", tuned on a Zen 4, where that loop ran at a third of a plain read
// (every row in order, no software prefetch: the hardware prefetchers alone); and
// "avx512-vnni-intel", tuned on a Xeon: the first, but the kQ8_0Rows loop's lookahead
// prefetches fill L2 only, and the float decode rows (f32/f16/bf16) prefetch ahead
// into L2 too.
// A Zen 4 (CpuIsAmdFamily19h) gets the second, an Intel CPU (CpuIsIntel) the third,
// every other CPU the first.
const DotKernels& BestDotKernels();
// AMD family 19h (Zen 3 and Zen 4; with AVX-512, Zen 4).
bool CpuIsAmdFamily19h();
// The CPUID vendor is GenuineIntel.
bool CpuIsIntel();
// The "avx512-vnni", "avx512-vnni-zen4" and "avx512-vnni-intel" sets whatever the CPU
// (nullptr without AVX-512 VNNI), for decode_bench --compare-avx512-sets and
// --compare-short-rows.
const DotKernels* Avx512DefaultDotKernels();
const DotKernels* Avx512Zen4SetDotKernels();
const DotKernels* Avx512IntelSetDotKernels();
// Portable scalar kernels (the reference the SIMD ones are tested against).
const DotKernels& ScalarDotKernels();
// Every kernel set this CPU can run, scalar first (for tests and benchmarks).
std::vector<const DotKernels*> AvailableDotKernels();

// Copies of the AVX-512 set whose kQ8_0Rows decode kernel prefetches at another
// distance: `long_chunks` chunks ahead on rows of a chunk (1,024 values) or more,
// `short_chunks` on shorter rows. Distances: long 2, 3, 4 or 6; short 3, 4, 6 or 9
// (nullptr for others, or without AVX-512 VNNI). For measuring the distance in decode
// steps (decode_bench --compare-row-prefetch); every variant computes the same products.
const DotKernels* RowPrefetchVariant(int long_chunks, int short_chunks);
std::vector<const DotKernels*> RowPrefetchVariants();
// A copy of the AVX-512 set whose kQ8_0Rows decode kernel takes rows shorter than a
// chunk one at a time, as the rows of a chunk or more, instead of four at a time
// (nullptr without AVX-512 VNNI). For decode_bench --compare-short-rows; the same products.
const DotKernels* ShortRowsOneAtATime();

// Whether weights of this dtype take Q8 activations.
inline bool UsesQ8Activations(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ8_0Rows; }

// y[r - row_begin] = dot(w row r, x) for rows [row_begin, row_end) of a 2-D weight.
// xq/xs: the Q8 form of x when UsesQ8Activations(w.dtype). Other dtypes (Q4_K, Q6_K)
// dequantize one row at a time into `scratch` (cols floats).
void DotRows(const DotKernels& k, const Tensor& w, const float* x, const int8_t* xq, const float* xs, int64_t row_begin,
             int64_t row_end, float* y, float* scratch);

// The tiled form of DotRows: y[t * y_stride + (r - row_begin)] = dot(w row r, x row t)
// for t in [0, kDotTile); activation row t at x + t * cols (xq likewise, xs at
// xs + t * cols / 32).
void DotRowsTile(const DotKernels& k, const Tensor& w, const float* x, const int8_t* xq, const float* xs,
                 int64_t row_begin, int64_t row_end, float* y, int64_t y_stride, float* scratch);

}  // namespace kvserve
