#include "sampling/seed_source.h"

#include <random>

namespace kvserve {
namespace {

// SplitMix64 finalizer: consecutive inputs give unrelated outputs.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t EntropySeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

SeedSource::SeedSource() : base_(EntropySeed()) {}

uint64_t SeedSource::NextSeed() {
  const uint64_t i = counter_.fetch_add(1, std::memory_order_relaxed);
  return Mix(base_ + i * 0x9E3779B97F4A7C15ull);
}

}  // namespace kvserve
