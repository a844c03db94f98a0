#include "sampling/logit_kernels.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace kvserve {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Every size from 0 to a few blocks, so SIMD bodies and scalar tails are both hit.
TEST(LogitKernelsTest, MatchScalarReferenceAtEverySize) {
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (size_t n : {0, 1, 3, 7, 8, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 2100}) {
    std::vector<float> x(n);
    for (float& v : x) v = normal(gen);
    if (n > 4) x[n / 2] = -kInf;
    const MaxResult mr = MaxLogit(x);
    EXPECT_FALSE(mr.has_nan);
    float ref_max = -kInf;
    for (float v : x) ref_max = std::max(ref_max, v);
    EXPECT_EQ(mr.max, ref_max) << n;

    const float scale = 0.7f, offset = ref_max * 0.7f;
    std::vector<float> w(n);
    std::vector<double> blocks;
    const double total = ExpWeights(x, scale, offset, w, blocks);
    double ref_total = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const double ref = std::exp(static_cast<double>(x[i] * scale - offset));
      EXPECT_NEAR(w[i], ref, 2e-6 * ref + 1e-30) << "n=" << n << " i=" << i;
      ref_total += w[i];
    }
    if (n > 4) {
      EXPECT_EQ(w[n / 2], 0.0f);  // -inf has weight exactly 0
    }
    EXPECT_NEAR(total, ref_total, 1e-6 * ref_total);
    EXPECT_NEAR(SumExp(x, scale, offset), total, 1e-6 * total);
    ASSERT_EQ(blocks.size(), (n + kExpBlock - 1) / kExpBlock);
    for (size_t b = 0; b < blocks.size(); ++b) {
      double s = 0.0;
      for (size_t i = b * kExpBlock; i < std::min(n, (b + 1) * kExpBlock); ++i) s += w[i];
      EXPECT_NEAR(blocks[b], s, 1e-6 * s);
    }

    std::vector<float> bm;
    BlockMaxima(x, bm);
    ASSERT_EQ(bm.size(), (n + kMaxBlock - 1) / kMaxBlock);
    for (size_t b = 0; b < bm.size(); ++b) {
      float m = -kInf;
      for (size_t i = b * kMaxBlock; i < std::min(n, (b + 1) * kMaxBlock); ++i) m = std::max(m, x[i]);
      EXPECT_EQ(bm[b], m);
    }
  }
}

TEST(LogitKernelsTest, NanDetectedAnywhere) {
  for (size_t n : {1, 5, 16, 33, 100}) {
    for (size_t pos : {size_t{0}, n / 2, n - 1}) {
      std::vector<float> x(n, 1.0f);
      x[pos] = std::nanf("");
      EXPECT_TRUE(MaxLogit(x).has_nan) << n << " " << pos;
    }
  }
}

TEST(LogitKernelsTest, TinyWeightsAreExactlyZero) {
  EXPECT_EQ(ExpWeight(-kInf, 1.0f, 0.0f), 0.0f);
  EXPECT_EQ(ExpWeight(-88.0f, 1.0f, 0.0f), 0.0f);
  EXPECT_GT(ExpWeight(-86.0f, 1.0f, 0.0f), 0.0f);
  std::vector<float> x = {-kInf, -1000.0f, 0.0f, -86.0f, -88.0f};
  std::vector<float> w(x.size());
  std::vector<double> blocks;
  ExpWeights(x, 1.0f, 0.0f, w, blocks);
  EXPECT_EQ(w[0], 0.0f);
  EXPECT_EQ(w[1], 0.0f);
  EXPECT_NEAR(w[2], 1.0f, 1e-7);
  EXPECT_GT(w[3], 0.0f);
  EXPECT_EQ(w[4], 0.0f);
}

}  // namespace
}  // namespace kvserve
