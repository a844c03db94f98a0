// Every fast dot-product kernel against the scalar reference, on random data of odd sizes.
#include "backend/cpu/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/quant.h"

namespace kvserve {
namespace {

std::vector<float> RandomRow(int64_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double ExactDot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(Kernels, FloatKernelsMatchScalar) {
  std::mt19937 rng(1);
  const DotKernels& fast = BestDotKernels();
  const DotKernels& ref = ScalarDotKernels();
  for (int64_t n : {1, 7, 8, 15, 16, 31, 33, 64, 100, 257, 4096}) {
    auto w = RandomRow(n, rng), x = RandomRow(n, rng);
    const double tol = 1e-4 * std::sqrt(static_cast<double>(n)) * 4;
    EXPECT_NEAR(fast.f32(w.data(), x.data(), n), ExactDot(w, x), tol) << n;
    std::vector<uint16_t> h(n), bf(n);
    std::vector<float> hw(n), bw(n);
    for (int64_t i = 0; i < n; ++i) {
      h[i] = FloatToFp16(w[i]);
      bf[i] = FloatToBf16(w[i]);
      hw[i] = Fp16ToFloat(h[i]);
      bw[i] = Bf16ToFloat(bf[i]);
    }
    EXPECT_NEAR(fast.f16(h.data(), x.data(), n), ExactDot(hw, x), tol) << n;
    EXPECT_NEAR(ref.f16(h.data(), x.data(), n), ExactDot(hw, x), tol) << n;
    EXPECT_NEAR(fast.bf16(bf.data(), x.data(), n), ExactDot(bw, x), tol) << n;
    EXPECT_NEAR(ref.bf16(bf.data(), x.data(), n), ExactDot(bw, x), tol) << n;
  }
}

TEST(Kernels, QuantizedKernelsMatchScalarExactlyOnIntegers) {
  std::mt19937 rng(2);
  const DotKernels& fast = BestDotKernels();
  const DotKernels& ref = ScalarDotKernels();
  for (int64_t n : {32, 64, 96, 1024, 4096 + 32}) {
    auto w = RandomRow(n, rng), x = RandomRow(n, rng, 3.0f);
    std::vector<int8_t> xq(n);
    std::vector<float> xs(n / 32);
    QuantizeActivationQ8(x.data(), n, xq.data(), xs.data());
    std::vector<uint8_t> q8(RowBytes(DType::kQ8_0, n)), q4(RowBytes(DType::kQ4_0, n));
    QuantizeRow(DType::kQ8_0, w.data(), q8.data(), n);
    QuantizeRow(DType::kQ4_0, w.data(), q4.data(), n);
    // Integer block sums are exact in both; only the float accumulation order differs.
    const float r8 = ref.q8_0(q8.data(), xq.data(), xs.data(), n), f8 = fast.q8_0(q8.data(), xq.data(), xs.data(), n);
    const float r4 = ref.q4_0(q4.data(), xq.data(), xs.data(), n), f4 = fast.q4_0(q4.data(), xq.data(), xs.data(), n);
    EXPECT_NEAR(f8, r8, 1e-4 * (1 + std::fabs(r8))) << n;
    EXPECT_NEAR(f4, r4, 1e-4 * (1 + std::fabs(r4))) << n;
    // And both approximate the float dot within quantization error.
    const double exact = ExactDot(w, x);
    const double scale = std::sqrt(static_cast<double>(n)) * 3;
    EXPECT_NEAR(r8, exact, 0.02 * scale) << n;
    EXPECT_NEAR(r4, exact, 0.25 * scale) << n;
  }
}

TEST(Kernels, DotRowsHandlesEveryDtype) {
  std::mt19937 rng(3);
  const int64_t rows = 5, cols = 256;
  auto x = RandomRow(cols, rng);
  std::vector<int8_t> xq(cols);
  std::vector<float> xs(cols / 32), scratch(cols);
  QuantizeActivationQ8(x.data(), cols, xq.data(), xs.data());
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    std::vector<float> w = RandomRow(rows * cols, rng);
    std::vector<uint8_t> data(RowBytes(t, cols) * rows);
    for (int64_t r = 0; r < rows; ++r) QuantizeRow(t, w.data() + r * cols, data.data() + r * RowBytes(t, cols), cols);
    Tensor tensor{"w", t, {rows, cols}, data.data(), data.size()};
    std::vector<float> y(rows);
    DotRows(BestDotKernels(), tensor, x.data(), xq.data(), xs.data(), 0, rows, y.data(), scratch.data());
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> deq(cols);
      DequantizeRow(t, data.data() + r * RowBytes(t, cols), deq.data(), cols);
      const double tol = UsesQ8Activations(t) ? 0.05 * std::sqrt(cols) : 1e-3;
      EXPECT_NEAR(y[r], ExactDot(deq, x), tol) << GetDTypeInfo(t).name << " row " << r;
    }
  }
}

// The prefill tiles (one weight row x kDotTile activation rows) against the single
// dot of the same kernel set, for every dtype and odd sizes (tails included).
TEST(Kernels, TilesMatchSingleDots) {
  std::mt19937 rng(4);
  for (const DotKernels* k : {&BestDotKernels(), &ScalarDotKernels()}) {
    for (int64_t n : {1, 7, 9, 31, 100, 257}) {
      auto w = RandomRow(n, rng), x = RandomRow(n * kDotTile, rng);
      std::vector<uint16_t> h(n), bf(n);
      for (int64_t i = 0; i < n; ++i) h[i] = FloatToFp16(w[i]), bf[i] = FloatToBf16(w[i]);
      float got[kDotTile];
      const double tol = 1e-4 * std::sqrt(static_cast<double>(n)) * 4;
      k->f32_tile(w.data(), x.data(), n, n, got);
      for (int t = 0; t < kDotTile; ++t) EXPECT_NEAR(got[t], ScalarDotKernels().f32(w.data(), x.data() + t * n, n), tol) << k->name << n;
      k->f16_tile(h.data(), x.data(), n, n, got);
      for (int t = 0; t < kDotTile; ++t) EXPECT_NEAR(got[t], ScalarDotKernels().f16(h.data(), x.data() + t * n, n), tol) << k->name << n;
      k->bf16_tile(bf.data(), x.data(), n, n, got);
      for (int t = 0; t < kDotTile; ++t) EXPECT_NEAR(got[t], ScalarDotKernels().bf16(bf.data(), x.data() + t * n, n), tol) << k->name << n;
    }
    for (int64_t n : {32, 96, 4096 + 32}) {
      auto w = RandomRow(n, rng), x = RandomRow(n * kDotTile, rng, 2.0f);
      std::vector<int8_t> xq(n * kDotTile);
      std::vector<float> xs(n * kDotTile / 32);
      QuantizeActivationQ8(x.data(), n * kDotTile, xq.data(), xs.data());
      std::vector<uint8_t> q8(RowBytes(DType::kQ8_0, n)), q4(RowBytes(DType::kQ4_0, n));
      QuantizeRow(DType::kQ8_0, w.data(), q8.data(), n);
      QuantizeRow(DType::kQ4_0, w.data(), q4.data(), n);
      float got8[kDotTile], got4[kDotTile];
      k->q8_0_tile(q8.data(), xq.data(), n, xs.data(), n / 32, n, got8);
      k->q4_0_tile(q4.data(), xq.data(), n, xs.data(), n / 32, n, got4);
      for (int t = 0; t < kDotTile; ++t) {
        const float r8 = ScalarDotKernels().q8_0(q8.data(), xq.data() + t * n, xs.data() + t * n / 32, n);
        const float r4 = ScalarDotKernels().q4_0(q4.data(), xq.data() + t * n, xs.data() + t * n / 32, n);
        EXPECT_NEAR(got8[t], r8, 1e-4 * (1 + std::fabs(r8))) << k->name << n;
        EXPECT_NEAR(got4[t], r4, 1e-4 * (1 + std::fabs(r4))) << k->name << n;
      }
    }
  }
}

TEST(Kernels, ScaleAxpyMatchesScalar) {
  std::mt19937 rng(6);
  for (int64_t n : {1, 7, 8, 64, 129}) {
    auto x = RandomRow(n, rng), y = RandomRow(n, rng);
    auto y_ref = y, y0 = y;
    BestDotKernels().scale_axpy(0.75f, -1.5f, x.data(), y.data(), n);
    ScalarDotKernels().scale_axpy(0.75f, -1.5f, x.data(), y_ref.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(y[i], y_ref[i], 1e-5) << n;
      EXPECT_NEAR(y_ref[i], 0.75 * y0[i] - 1.5 * x[i], 1e-5);
    }
  }
}

TEST(Kernels, DotRowsTileEqualsDotRowsForEveryDtype) {
  std::mt19937 rng(5);
  const int64_t rows = 7, cols = 256;
  auto x = RandomRow(cols * kDotTile, rng);
  std::vector<int8_t> xq(cols * kDotTile);
  std::vector<float> xs(cols * kDotTile / 32), scratch(cols);
  QuantizeActivationQ8(x.data(), cols * kDotTile, xq.data(), xs.data());
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    std::vector<float> w = RandomRow(rows * cols, rng);
    std::vector<uint8_t> data(RowBytes(t, cols) * rows);
    if (t == DType::kQ4_K || t == DType::kQ6_K) {
      // No K-quant quantizer: random super-blocks with a sane fp16 scale (ggml layout:
      // Q4_K starts with d, dmin; Q6_K ends with d).
      for (auto& byte : data) byte = static_cast<uint8_t>(rng());
      const size_t sb = t == DType::kQ4_K ? 144 : 210;
      for (size_t off = 0; off < data.size(); off += sb) {
        const uint16_t d = FloatToFp16(0.01f);
        if (t == DType::kQ4_K) {
          std::memcpy(&data[off], &d, 2);
          std::memcpy(&data[off + 2], &d, 2);
        } else {
          std::memcpy(&data[off + sb - 2], &d, 2);
        }
      }
    } else {
      for (int64_t r = 0; r < rows; ++r) QuantizeRow(t, w.data() + r * cols, data.data() + r * RowBytes(t, cols), cols);
    }
    Tensor tensor{"w", t, {rows, cols}, data.data(), data.size()};
    std::vector<float> tiled(kDotTile * rows), single(rows);
    DotRowsTile(BestDotKernels(), tensor, x.data(), xq.data(), xs.data(), 1, rows, tiled.data(), rows, scratch.data());
    for (int u = 0; u < kDotTile; ++u) {
      DotRows(BestDotKernels(), tensor, x.data() + u * cols, xq.data() + u * cols, xs.data() + u * cols / 32, 1, rows,
              single.data(), scratch.data());
      for (int64_t r = 0; r + 1 < rows; ++r)
        EXPECT_NEAR(tiled[u * rows + r], single[r], 1e-3) << GetDTypeInfo(t).name << " token " << u << " row " << r;
    }
  }
}

}  // namespace
}  // namespace kvserve
