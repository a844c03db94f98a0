// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
//
// Why counter-based: a draw is a pure function of (seed, stream, index), so a
// request's samples do not depend on how many other requests shared the step,
// on the order the engine visits them, or on preemption and recomputation.
#pragma once

#include <array>
#include <cstdint>

namespace kvserve {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The Philox4x32 bijection with 10 rounds (matches Random123's philox4x32_10).
PhiloxCounter Philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// The random stream of one sequence: key = seed, counter = (index, stream).
class SequenceRng {
 public:
  SequenceRng(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}

  // A uniform double in [0, 1) with 53 random bits; draw `index` of the stream.
  double Uniform(uint64_t index) const;

  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }

 private:
  uint64_t seed_;
  uint64_t stream_;
};

}  // namespace kvserve
