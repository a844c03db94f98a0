// Every fast dot-product kernel against the scalar reference, on random data of odd sizes.
#include "backend/cpu/kernels.h"
#include "backend/cpu/kernels_internal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
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
  const DotKernels& ref = ScalarDotKernels();
  for (const DotKernels* kernels : AvailableDotKernels())
  for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100, 257, 4096}) {
    const DotKernels& fast = *kernels;
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
  const DotKernels& ref = ScalarDotKernels();
  for (int64_t n : {32, 64, 96, 160, 1024, 4096 + 32}) {
    auto w = RandomRow(n, rng), x = RandomRow(n, rng, 3.0f);
    std::vector<int8_t> xq(n);
    std::vector<float> xs(n / 32);
    QuantizeActivationQ8(x.data(), n, xq.data(), xs.data());
    std::vector<uint8_t> q8(RowBytes(DType::kQ8_0, n)), q4(RowBytes(DType::kQ4_0, n));
    QuantizeRow(DType::kQ8_0, w.data(), q8.data(), n);
    QuantizeRow(DType::kQ4_0, w.data(), q4.data(), n);
    const float r8 = ref.q8_0(q8.data(), xq.data(), xs.data(), n);
    const float r4 = ref.q4_0(q4.data(), xq.data(), xs.data(), n);
    // The scalar reference is the exact dot of the dequantized operands.
    std::vector<float> w8(n), w4(n), xd(n);
    DequantizeRow(DType::kQ8_0, q8.data(), w8.data(), n);
    DequantizeRow(DType::kQ4_0, q4.data(), w4.data(), n);
    for (int64_t i = 0; i < n; ++i) xd[i] = xq[i] * xs[i / 32];
    EXPECT_NEAR(r8, ExactDot(w8, xd), 1e-4 * (1 + std::fabs(r8))) << n;
    EXPECT_NEAR(r4, ExactDot(w4, xd), 1e-4 * (1 + std::fabs(r4))) << n;
    // Integer block sums are exact in every kernel set; only the float accumulation order differs.
    for (const DotKernels* fast : AvailableDotKernels()) {
      EXPECT_NEAR(fast->q8_0(q8.data(), xq.data(), xs.data(), n), r8, 1e-4 * (1 + std::fabs(r8))) << fast->name << n;
      EXPECT_NEAR(fast->q4_0(q4.data(), xq.data(), xs.data(), n), r4, 1e-4 * (1 + std::fabs(r4))) << fast->name << n;
    }
  }
}

// kQ8_0Rows rows (Q8_0 values re-laid out) give every kernel set the products the
// scalar Q8_0 kernel gives on the original blocks: row lengths with whole groups of
// eight blocks, tails of 1..7 blocks, whole 1,024-value chunks and part-chunk tails,
// and rows at odd addresses (split rows are 64-byte aligned only when n % 1024 == 0).
TEST(Kernels, RowPrefetchVariantsAreFoundByTheirDistances) {
  const DotKernels* avx512 = Avx512DefaultDotKernels();
  EXPECT_EQ(RowPrefetchVariants().size(), avx512 != nullptr ? 16u : 0u);
  const DotKernels* k = RowPrefetchVariant(3, 9);
  EXPECT_EQ(k != nullptr, avx512 != nullptr);
  if (k != nullptr) {
    EXPECT_STREQ(k->name, "avx512-vnni, kQ8_0Rows prefetch 3/9 chunks");
    EXPECT_NE(k->q8_0_rows, avx512->q8_0_rows);
    EXPECT_EQ(k->q8_0_rows_tile, avx512->q8_0_rows_tile);
  }
  EXPECT_EQ(RowPrefetchVariant(5, 5), nullptr);
  EXPECT_EQ(RowPrefetchVariant(3, 7), nullptr);
}

// Both AVX-512 sets are offered (so every kernel test runs both) and a Zen 4 gets its own.
TEST(Kernels, BestSetFollowsTheCpu) {
  std::vector<std::string> names;
  for (const DotKernels* k : AvailableDotKernels()) names.emplace_back(k->name);
  const bool avx512 = Avx512DefaultDotKernels() != nullptr;
  for (const char* set : {"avx512-vnni", "avx512-vnni-zen4", "avx512-vnni-intel"})
    EXPECT_EQ(std::count(names.begin(), names.end(), set), avx512 ? 1 : 0) << set;
  const std::string best = BestDotKernels().name;
  if (avx512) EXPECT_EQ(best, CpuIsAmdFamily19h() ? "avx512-vnni-zen4" : CpuIsIntel() ? "avx512-vnni-intel" : "avx512-vnni");
  else EXPECT_TRUE(best == "avx2" || best == "scalar") << best;
  EXPECT_TRUE(BestDotKernels().prefers_q8_0_rows == avx512);
  if (!avx512) return;
  // The sets keep their own tunings: avx512-vnni's decode loop is the one that prefetches
  // four chunks ahead on every row (the 4/4 variant), with attention prefetching too;
  // the Intel set differs from it in its decode loops only (a lookahead into L2).
  const DotKernels* full = Avx512DefaultDotKernels();
  const DotKernels* zen4 = Avx512Zen4SetDotKernels();
  const DotKernels* intel = Avx512IntelSetDotKernels();
  ASSERT_NE(zen4, nullptr);
  ASSERT_NE(intel, nullptr);
  EXPECT_EQ(full->q8_0_rows, RowPrefetchVariant(4, 4)->q8_0_rows);
  EXPECT_NE(zen4->q8_0_rows, full->q8_0_rows);
  EXPECT_NE(zen4->attend, full->attend);
  EXPECT_NE(zen4->attend_f16, full->attend_f16);
  EXPECT_TRUE(full->software_prefetch);
  EXPECT_FALSE(zen4->software_prefetch);
  EXPECT_EQ(zen4->q8_0_rows_tile, full->q8_0_rows_tile);
  EXPECT_NE(intel->q8_0_rows, full->q8_0_rows);
  EXPECT_NE(intel->q8_0_rows, zen4->q8_0_rows);
  EXPECT_NE(intel->f16, full->f16);
  EXPECT_NE(intel->bf16, full->bf16);
  EXPECT_NE(intel->f32, full->f32);
  EXPECT_EQ(intel->f16_tile, full->f16_tile);
  EXPECT_EQ(intel->attend, full->attend);
  EXPECT_EQ(intel->attend_f16, full->attend_f16);
  EXPECT_TRUE(intel->software_prefetch);
  EXPECT_EQ(intel->q8_0_rows_tile, full->q8_0_rows_tile);
}

TEST(Kernels, Q8_0RowsKernelsMatchQ8_0) {
  std::mt19937 rng(12);
  const DotKernels& ref = ScalarDotKernels();
  // One row, a few, and more than 16 (a prefetch past one row lands in the next ones).
  for (int64_t n : {32, 64, 96, 224, 256, 288, 576, 1024, 1536, 2048, 2048 + 32, 3072, 5632, 4096 + 32}) {
    for (auto [rows, misalign] : {std::pair<int64_t, size_t>{3, 0}, {3, 2}, {3, 34}, {1, 2}, {16, 0}, {17, 34}, {35, 2}}) {
      auto w = RandomRow(n * rows, rng), x = RandomRow(n, rng, 3.0f);
      std::vector<int8_t> xq(n);
      std::vector<float> xs(n / 32);
      QuantizeActivationQ8(x.data(), n, xq.data(), xs.data());
      const size_t rb = RowBytes(DType::kQ8_0, n);
      std::vector<uint8_t> q8(rb * rows), buffer(rb * rows + misalign);
      uint8_t* split = buffer.data() + misalign;
      for (int64_t r = 0; r < rows; ++r) {
        QuantizeRow(DType::kQ8_0, w.data() + r * n, q8.data() + r * rb, n);
        SplitQ8_0Row(q8.data() + r * rb, split + r * rb, n);
      }
      std::vector<const DotKernels*> sets = AvailableDotKernels();
      for (const DotKernels* k : RowPrefetchVariants()) sets.push_back(k);
      if (ShortRowsOneAtATime() != nullptr) sets.push_back(ShortRowsOneAtATime());
      for (const DotKernels* k : sets) {
        std::vector<float> y(rows);
        k->q8_0_rows(split, rb, rows, xq.data(), xs.data(), n, y.data());
        for (int64_t r = 0; r < rows; ++r) {
          const float want = ref.q8_0(q8.data() + r * rb, xq.data(), xs.data(), n);
          EXPECT_NEAR(y[r], want, 1e-4 * (1 + std::fabs(want))) << k->name << " n " << n << " misalign " << misalign << " row " << r << " of " << rows;
        }
      }
    }
  }
  // Extremes: every weight and activation byte at +-127 (the unsigned offset makes
  // VPDPBUSD's products 255 x 127; a lane's sum of four must not overflow).
  for (int sign : {1, -1}) {
    const int64_t n = 256 + 64;
    std::vector<float> w(n, 1.0f), x(n, static_cast<float>(sign));
    std::vector<int8_t> xq(n);
    std::vector<float> xs(n / 32);
    QuantizeActivationQ8(x.data(), n, xq.data(), xs.data());
    std::vector<uint8_t> q8(RowBytes(DType::kQ8_0, n)), split(q8.size());
    QuantizeRow(DType::kQ8_0, w.data(), q8.data(), n);
    SplitQ8_0Row(q8.data(), split.data(), n);
    const float want = ref.q8_0(q8.data(), xq.data(), xs.data(), n);
    EXPECT_NEAR(want, sign * n, 1e-2 * n);
    for (const DotKernels* k : AvailableDotKernels()) {
      float y = 0;
      k->q8_0_rows(split.data(), split.size(), 1, xq.data(), xs.data(), n, &y);
      EXPECT_NEAR(y, want, 1e-4 * n) << k->name << " sign " << sign;
    }
  }
}

TEST(Kernels, SimdActivationQuantizerGivesTheScalarBytes) {
  auto simd = Avx512QuantizeActivationQ8();
  if (simd == nullptr) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(9);
  for (int64_t n : {32, 64, 2048, 5632}) {
    auto x = RandomRow(n, rng, 4.0f);
    // A block whose max is 127 makes x / d land on exact halves: ties must round alike.
    if (n >= 64) {
      x[32] = 127.0f;
      for (int j = 33; j < 64; ++j) x[j] = static_cast<float>(j - 48) + 0.5f;
    }
    for (int j = 0; j < 3; ++j) x[j] = 0.0f;  // and an all-but-zero start
    std::vector<int8_t> qa(n), qb(n);
    std::vector<float> sa(n / 32), sb(n / 32);
    QuantizeActivationQ8Scalar(x.data(), n, qa.data(), sa.data());
    simd(x.data(), n, qb.data(), sb.data());
    EXPECT_EQ(qa, qb) << n;
    EXPECT_EQ(sa, sb) << n;
  }
  std::vector<float> zeros(64, 0.0f);
  std::vector<int8_t> q(64, 1);
  std::vector<float> sc(2, 1.0f);
  simd(zeros.data(), 64, q.data(), sc.data());
  EXPECT_EQ(q, std::vector<int8_t>(64, 0));
  EXPECT_EQ(sc, std::vector<float>(2, 0.0f));
}

TEST(Kernels, DotRowsHandlesEveryDtype) {
  std::mt19937 rng(3);
  const int64_t rows = 5, cols = 256;
  auto x = RandomRow(cols, rng);
  std::vector<int8_t> xq(cols);
  std::vector<float> xs(cols / 32), scratch(cols);
  QuantizeActivationQ8(x.data(), cols, xq.data(), xs.data());
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ8_0Rows}) {
    std::vector<float> w = RandomRow(rows * cols, rng);
    std::vector<uint8_t> data(RowBytes(t, cols) * rows);
    for (int64_t r = 0; r < rows; ++r) QuantizeRow(t, w.data() + r * cols, data.data() + r * RowBytes(t, cols), cols);
    Tensor tensor{"w", t, {rows, cols}, data.data(), data.size()};
    std::vector<float> y(rows);
    for (const DotKernels* k : AvailableDotKernels()) {
    DotRows(*k, tensor, x.data(), xq.data(), xs.data(), 0, rows, y.data(), scratch.data());
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> deq(cols);
      DequantizeRow(t, data.data() + r * RowBytes(t, cols), deq.data(), cols);
      const double tol = UsesQ8Activations(t) ? 0.05 * std::sqrt(cols) : 1e-3;
      EXPECT_NEAR(y[r], ExactDot(deq, x), tol) << k->name << GetDTypeInfo(t).name << " row " << r;
    }
    }
  }
}

// The prefill tiles (1..kTileRows weight rows x kDotTile activation rows) of every
// kernel set against the scalar single dot, for every dtype and odd sizes (tails included).
TEST(Kernels, TilesMatchSingleDots) {
  std::mt19937 rng(4);
  const DotKernels& ref = ScalarDotKernels();
  for (const DotKernels* k : AvailableDotKernels()) {
    for (int rows = 1; rows <= kTileRows; ++rows) {
      for (int64_t n : {1, 7, 9, 31, 100, 257}) {
        auto w = RandomRow(n * rows, rng), x = RandomRow(n * kDotTile, rng);
        std::vector<uint16_t> h(n * rows), bf(n * rows);
        for (int64_t i = 0; i < n * rows; ++i) h[i] = FloatToFp16(w[i]), bf[i] = FloatToBf16(w[i]);
        float got[kDotTile * kTileRows];
        const double tol = 1e-4 * std::sqrt(static_cast<double>(n)) * 4;
        k->f32_tile(w.data(), n * sizeof(float), rows, x.data(), n, n, got);
        for (int r = 0; r < rows; ++r)
          for (int t = 0; t < kDotTile; ++t)
            EXPECT_NEAR(got[t * kTileRows + r], ref.f32(w.data() + r * n, x.data() + t * n, n), tol) << k->name << n << " row " << r;
        k->f16_tile(h.data(), n * 2, rows, x.data(), n, n, got);
        for (int r = 0; r < rows; ++r)
          for (int t = 0; t < kDotTile; ++t)
            EXPECT_NEAR(got[t * kTileRows + r], ref.f16(h.data() + r * n, x.data() + t * n, n), tol) << k->name << n << " row " << r;
        k->bf16_tile(bf.data(), n * 2, rows, x.data(), n, n, got);
        for (int r = 0; r < rows; ++r)
          for (int t = 0; t < kDotTile; ++t)
            EXPECT_NEAR(got[t * kTileRows + r], ref.bf16(bf.data() + r * n, x.data() + t * n, n), tol) << k->name << n << " row " << r;
      }
      for (int64_t n : {32, 96, 4096 + 32}) {
        auto w = RandomRow(n * rows, rng), x = RandomRow(n * kDotTile, rng, 2.0f);
        std::vector<int8_t> xq(n * kDotTile);
        std::vector<float> xs(n * kDotTile / 32);
        QuantizeActivationQ8(x.data(), n * kDotTile, xq.data(), xs.data());
        const size_t rb8 = RowBytes(DType::kQ8_0, n), rb4 = RowBytes(DType::kQ4_0, n);
        std::vector<uint8_t> q8(rb8 * rows), q4(rb4 * rows);
        for (int r = 0; r < rows; ++r) {
          QuantizeRow(DType::kQ8_0, w.data() + r * n, q8.data() + r * rb8, n);
          QuantizeRow(DType::kQ4_0, w.data() + r * n, q4.data() + r * rb4, n);
        }
        std::vector<uint8_t> split(q8.size());
        for (int r = 0; r < rows; ++r) SplitQ8_0Row(q8.data() + r * rb8, split.data() + r * rb8, n);
        float got8[kDotTile * kTileRows], got4[kDotTile * kTileRows], got8r[kDotTile * kTileRows];
        k->q8_0_tile(q8.data(), rb8, rows, xq.data(), n, xs.data(), n / 32, n, got8);
        k->q4_0_tile(q4.data(), rb4, rows, xq.data(), n, xs.data(), n / 32, n, got4);
        k->q8_0_rows_tile(split.data(), rb8, rows, xq.data(), n, xs.data(), n / 32, n, got8r);
        for (int r = 0; r < rows; ++r) {
          for (int t = 0; t < kDotTile; ++t) {
            const float r8 = ref.q8_0(q8.data() + r * rb8, xq.data() + t * n, xs.data() + t * n / 32, n);
            const float r4 = ref.q4_0(q4.data() + r * rb4, xq.data() + t * n, xs.data() + t * n / 32, n);
            EXPECT_NEAR(got8[t * kTileRows + r], r8, 1e-4 * (1 + std::fabs(r8))) << k->name << n << " row " << r;
            EXPECT_NEAR(got8r[t * kTileRows + r], r8, 1e-4 * (1 + std::fabs(r8))) << k->name << n << " row " << r << " (rows layout)";
            EXPECT_NEAR(got4[t * kTileRows + r], r4, 1e-4 * (1 + std::fabs(r4))) << k->name << n << " row " << r;
          }
        }
      }
    }
  }
}

TEST(Kernels, ScaleAxpyMatchesScalar) {
  std::mt19937 rng(6);
  for (int64_t n : {1, 7, 8, 17, 64, 129}) {
    auto x = RandomRow(n, rng), y = RandomRow(n, rng);
    auto y_ref = y, y0 = y;
    ScalarDotKernels().scale_axpy(0.75f, -1.5f, x.data(), y_ref.data(), n);
    for (const DotKernels* k : AvailableDotKernels()) {
      y = y0;
      k->scale_axpy(0.75f, -1.5f, x.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(y[i], y_ref[i], 1e-5) << k->name << n;
        EXPECT_NEAR(y_ref[i], 0.75 * y0[i] - 1.5 * x[i], 1e-5);
      }
    }
  }
}

TEST(Kernels, SiluMulMatchesExactActivation) {
  std::mt19937 rng(8);
  for (int64_t n : {1, 7, 16, 17, 33, 100, 5632}) {
    auto g = RandomRow(n, rng, 4.0f), u = RandomRow(n, rng);
    // The extremes: Exp clamps, so silu must still be ~0 far below zero and ~g far above.
    if (n >= 4) {
      g[0] = -200.0f;
      g[1] = 200.0f;
      g[2] = -88.5f;
      g[3] = 0.0f;
    }
    for (const DotKernels* k : AvailableDotKernels()) {
      std::vector<float> out(n, NAN);
      k->silu_mul(g.data(), u.data(), out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double exact = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
        EXPECT_NEAR(out[i], exact, 1e-6 * (1.0 + std::fabs(exact))) << k->name << " n=" << n << " g=" << g[i];
      }
      // In place, as the backend may call it.
      std::vector<float> inplace = g;
      k->silu_mul(inplace.data(), u.data(), inplace.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(inplace[i], out[i]) << k->name;
    }
  }
}

// attend (and attend_f16) for a group of `heads` query heads over n keys, cut into
// spans of `piece` keys (as the backend hands over one span per KV block), against
// softmax(scale q_h.K) V in double per head. The spans go either all in one call or one
// per call (the state carried between calls, as when a token's blocks are split into
// runs); over 256 keys the AVX-512 kernel makes more than one pass, and a span of 300
// keys is split between passes. The keys are handed over transposed, with a stride
// wider than n (as in a KV block). In f16 the reference uses the keys and values
// rounded to f16, so both are held to the same bound.
TEST(Kernels, AttendMatchesExactSoftmaxAttention) {
  std::mt19937 rng(8);
  for (int64_t d : {8, 24, 64, 80, 128})
    for (int heads : {1, 2, 3, 4, 5, 8, 9, 12})
      for (int64_t n : {1, 5, 16, 17, 40, 130, 300})
        for (int64_t piece : {int64_t{1}, int64_t{7}, int64_t{16}, n})
          for (float spread : {0.3f, 4.0f})    // 4: scores far apart, exercises the rescale and underflow
            for (bool f16 : {false, true})
              for (bool one_call : {false, true}) {
                if ((heads > 3 && d != 64) || (piece == 7 && heads != 3)) continue;  // keep the test quick
                if (n == 300 && (heads != 3 || d != 64 || piece == 1)) continue;
                auto q = RandomRow(heads * d, rng, spread), k = RandomRow(n * d, rng), v = RandomRow(n * d, rng);
                std::vector<uint16_t> k16(n * d), v16(n * d);
                if (f16) {
                  for (int64_t i = 0; i < n * d; ++i) {
                    k16[i] = FloatToFp16(k[i]);
                    v16[i] = FloatToFp16(v[i]);
                    k[i] = Fp16ToFloat(k16[i]);
                    v[i] = Fp16ToFloat(v16[i]);
                  }
                }
                const double scale = 1.0 / std::sqrt(static_cast<double>(d));
                std::vector<double> want(heads * d, 0.0), total(heads, 0.0), mx(heads, -INFINITY);
                for (int h = 0; h < heads; ++h) {
                  std::vector<double> s(n);
                  for (int64_t j = 0; j < n; ++j) {
                    double dot = 0;
                    for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(q[h * d + i]) * k[j * d + i];
                    s[j] = dot * scale;
                    mx[h] = std::max(mx[h], s[j]);
                  }
                  for (int64_t j = 0; j < n; ++j) {
                    const double e = std::exp(s[j] - mx[h]);
                    total[h] += e;
                    for (int64_t i = 0; i < d; ++i) want[h * d + i] += e * v[j * d + i];
                  }
                }
                const int64_t stride = n + 3;
                std::vector<float> kt(d * stride, std::nanf(""));  // padding must not be read
                std::vector<uint16_t> kt16(d * stride, 0x7E00);    // f16 NaN
                for (int64_t j = 0; j < n; ++j)
                  for (int64_t i = 0; i < d; ++i) {
                    kt[i * stride + j] = k[j * d + i];
                    kt16[i * stride + j] = k16[j * d + i];
                  }
                for (const DotKernels* kernels : AvailableDotKernels()) {
                  std::vector<float> out(heads * d, 0.0f), m(heads, -INFINITY), sum(heads, 0.0f);
                  std::vector<KvSpan> spans;
                  for (int64_t j0 = 0; j0 < n; j0 += piece) {
                    const int64_t cnt = std::min(piece, n - j0);
                    if (f16) spans.push_back({kt16.data() + j0, v16.data() + j0 * d, cnt});
                    else spans.push_back({kt.data() + j0, v.data() + j0 * d, cnt});
                  }
                  const int per_call = one_call ? static_cast<int>(spans.size()) : 1;
                  for (size_t s0 = 0; s0 < spans.size(); s0 += per_call) {
                    if (f16)
                      kernels->attend_f16(q.data(), heads, spans.data() + s0, per_call, stride, d, static_cast<float>(scale), m.data(),
                                          sum.data(), out.data());
                    else
                      kernels->attend(q.data(), heads, spans.data() + s0, per_call, stride, d, static_cast<float>(scale), m.data(),
                                      sum.data(), out.data());
                  }
                  for (int h = 0; h < heads; ++h) {
                    ASSERT_NEAR(m[h], mx[h], 1e-4 * (1 + std::fabs(mx[h]))) << kernels->name << " head " << h;
                    for (int64_t i = 0; i < d; ++i)
                      ASSERT_NEAR(out[h * d + i] / sum[h], want[h * d + i] / total[h], 2e-5)
                          << kernels->name << (f16 ? " f16" : " f32") << " heads=" << heads << " h=" << h << " d=" << d
                          << " n=" << n << " piece=" << piece << " one_call=" << one_call << " i=" << i;
                  }
                }
              }
}

// to_f16 rounds as FloatToFp16 does, bit for bit (ties to even, subnormals, signed
// zeros), and saturates what lies beyond f16's range to +-65504 (infinities included)
// while NaN stays NaN; lengths with and without a vector tail.
TEST(Kernels, ToF16MatchesFloatToFp16AndSaturates) {
  std::mt19937 rng(12);
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65519.0f, 65520.0f, 1e6f, -1e6f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 1e-9f,
                          1.00048828125f /* tie: 1 + 2^-11 */, 1.00146484375f /* tie, odd below */, INFINITY, -INFINITY,
                          std::nanf("")};
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-30, 20);
  while (x.size() < 1000) x.push_back(std::ldexp(mant(rng), expo(rng)));
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{31}, static_cast<int64_t>(x.size())})
    for (const DotKernels* k : AvailableDotKernels()) {
      std::vector<uint16_t> got(n + 1, 0xABCD);
      k->to_f16(x.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(x[i])) {
          EXPECT_TRUE(std::isnan(Fp16ToFloat(got[i]))) << k->name;
          continue;
        }
        const uint16_t want = std::fabs(x[i]) > 65504.0f ? FloatToFp16(std::copysign(65504.0f, x[i])) : FloatToFp16(x[i]);
        ASSERT_EQ(got[i], want) << k->name << " x=" << x[i];
      }
      EXPECT_EQ(got[n], 0xABCD) << k->name << ": wrote past n";
    }
}

TEST(Kernels, DotRowsTileEqualsDotRowsForEveryDtype) {
  std::mt19937 rng(5);
  const int64_t rows = 7, cols = 256;
  auto x = RandomRow(cols * kDotTile, rng);
  std::vector<int8_t> xq(cols * kDotTile);
  std::vector<float> xs(cols * kDotTile / 32), scratch(cols);
  QuantizeActivationQ8(x.data(), cols * kDotTile, xq.data(), xs.data());
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ8_0Rows, DType::kQ4_K, DType::kQ6_K}) {
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
    for (const DotKernels* k : AvailableDotKernels()) {
    DotRowsTile(*k, tensor, x.data(), xq.data(), xs.data(), 1, rows, tiled.data(), rows, scratch.data());
    for (int u = 0; u < kDotTile; ++u) {
      DotRows(*k, tensor, x.data() + u * cols, xq.data() + u * cols, xs.data() + u * cols / 32, 1, rows,
              single.data(), scratch.data());
      for (int64_t r = 0; r + 1 < rows; ++r)
        EXPECT_NEAR(tiled[u * rows + r], single[r], 1e-3) << k->name << GetDTypeInfo(t).name << " token " << u << " row " << r;
    }
    }
  }
}

}  // namespace
}  // namespace kvserve
