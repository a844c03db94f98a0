#include "sampling/philox.h"

#include <set>

#include <gtest/gtest.h>

#include "sampling/seed_source.h"

namespace kvserve {
namespace {

// Known-answer vectors of Random123's tests/kat_vectors ("philox4x32 10" lines):
// counter[4] key[2] -> result[4].
TEST(PhiloxTest, KnownAnswerVectors) {
  EXPECT_EQ(Philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(Philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(Philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(PhiloxTest, UniformIsPureFunctionOfSeedStreamIndex) {
  SequenceRng a(42, 0), b(42, 0), other_stream(42, 1), other_seed(43, 0);
  // Query b in a scrambled order: values depend only on the index.
  std::vector<double> forward, backward(1000);
  for (uint64_t i = 0; i < 1000; ++i) forward.push_back(a.Uniform(i));
  for (uint64_t i = 1000; i-- > 0;) backward[i] = b.Uniform(i);
  EXPECT_EQ(forward, backward);
  int same_stream = 0, same_seed = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    same_stream += forward[i] == other_stream.Uniform(i);
    same_seed += forward[i] == other_seed.Uniform(i);
  }
  EXPECT_EQ(same_stream, 0);
  EXPECT_EQ(same_seed, 0);
}

TEST(PhiloxTest, UniformMomentsAndRange) {
  SequenceRng rng(7, 3);
  constexpr int kN = 200000;
  double sum = 0, sum_sq = 0;
  int buckets[10] = {};
  for (int i = 0; i < kN; ++i) {
    const double u = rng.Uniform(i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
    ++buckets[static_cast<int>(u * 10)];
  }
  // Mean 1/2 with sd sqrt(1/12/N) = 6.5e-4; 6e-3 is ~9 sd.
  EXPECT_NEAR(sum / kN, 0.5, 6e-3);
  EXPECT_NEAR(sum_sq / kN, 1.0 / 3.0, 6e-3);
  // Each decile expects 20000 with sd ~134; 1000 is > 7 sd.
  for (int b : buckets) EXPECT_NEAR(b, kN / 10, 1000);
}

TEST(SeedSourceTest, DistinctSeedsAndDeterministicBase) {
  SeedSource a(1), b(1), entropy;
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t s = a.NextSeed();
    EXPECT_EQ(s, b.NextSeed());
    seen.insert(s);
    seen.insert(entropy.NextSeed());
  }
  EXPECT_EQ(seen.size(), 2000u);
}

}  // namespace
}  // namespace kvserve
