// The process-level source of seeds for requests that did not set one.
// Owned by the engine (or a test) and passed in; there is no global RNG.
#pragma once

#include <atomic>
#include <cstdint>

namespace kvserve {

class SeedSource {
 public:
  // Entropy from std::random_device.
  SeedSource();
  // Deterministic, for tests and reproducible benchmarks.
  explicit SeedSource(uint64_t base) : base_(base) {}

  // Distinct well-mixed seeds; safe to call from several threads.
  uint64_t NextSeed();

 private:
  uint64_t base_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace kvserve
