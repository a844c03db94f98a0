// Kernel sets compiled in their own translation units (each with its own target
// attributes), found by kernels.cpp at run time.
#pragma once

#include <vector>

#include "backend/cpu/kernels.h"

namespace kvserve {

// The largest finite f16: DotKernels::to_f16 saturates to it.
constexpr float kF16Max = 65504.0f;

// nullptr when this CPU lacks AVX-512 F/BW/VL/DQ/VNNI or FMA (F16C comes with them).
const DotKernels* Avx512DotKernels();
// The same set with the kQ8_0Rows decode loop and attention tuned on a Zen 4 (rows in
// order, no software prefetch); nullptr likewise.
const DotKernels* Avx512Zen4DotKernels();
// The same set with the decode loops' lookahead into L2 (kQ8_0Rows and the float rows),
// tuned on an Intel Xeon; nullptr likewise.
const DotKernels* Avx512IntelDotKernels();
// RowPrefetchVariants' sets (empty without AVX-512).
const std::vector<DotKernels>& Avx512RowPrefetchVariants();
// ShortRowsOneAtATime's set (nullptr without AVX-512).
const DotKernels* Avx512ShortRowsOneAtATime();

// QuantizeActivationQ8 in AVX-512 (nullptr without it) and in portable code; both give
// identical bytes and scales.
using QuantizeActivationFn = void (*)(const float* x, int64_t n, int8_t* qs, float* scales);
QuantizeActivationFn Avx512QuantizeActivationQ8();
void QuantizeActivationQ8Scalar(const float* x, int64_t n, int8_t* qs, float* scales);

}  // namespace kvserve
