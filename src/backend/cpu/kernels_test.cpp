// Every fast dot-product kernel against the scalar reference, on random data of odd sizes.
#include "backend/cpu/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace kvserve
