// The streaming read the bandwidth benchmarks compare against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "util/huge_page_region.h"

namespace kvserve {

// Sums 64-bit words of [p, p + n) with independent accumulators, so the loop is bound
// by loads, not by an add chain.
inline uint64_t ReadSum(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
    a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// One streaming read of `buf` by `threads` threads, each summing a contiguous share;
// returns the sums folded together (the caller keeps it observable).
inline uint64_t ThreadedReadSum(std::span<const uint64_t> buf, int threads) {
  std::vector<std::thread> pool;
  std::vector<uint64_t> sums(threads);
  const size_t n = buf.size();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { sums[t] = ReadSum(buf.data() + n * t / threads, n * (t + 1) / threads - n * t / threads); });
  for (auto& th : pool) th.join();
  uint64_t s = 0;
  for (uint64_t v : sums) s ^= v;
  return s;
}

// A filled buffer to stream, in 4 KiB pages (a plain heap allocation) or in 2 MiB pages
// (HugePageRegion), matching how the weights being compared against are held.
class ReadBuffer {
 public:
  ReadBuffer(size_t bytes, bool huge_pages) {
    const size_t n = bytes / sizeof(uint64_t);
    uint64_t* p = nullptr;
    if (huge_pages) {
      if (auto r = HugePageRegion::Allocate(n * sizeof(uint64_t)); r.ok()) region_ = std::move(*r);
    }
    if (region_ != nullptr) {
      p = reinterpret_cast<uint64_t*>(region_->data());
    } else {
      heap_.resize(n);
      p = heap_.data();
    }
    for (size_t i = 0; i < n; ++i) p[i] = i;  // faults every page in before timing
    words_ = std::span<const uint64_t>(p, n);
  }
  std::span<const uint64_t> words() const { return words_; }

 private:
  std::unique_ptr<HugePageRegion> region_;
  std::vector<uint64_t> heap_;
  std::span<const uint64_t> words_;
};

}  // namespace kvserve
