// The streaming read the bandwidth benchmarks compare against.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "util/huge_page_region.h"

namespace kvserve {

// Sums 64-bit words of [p, p + n) with independent accumulators, so the loop is bound
// by loads, not by an add chain. With AVX2, in 32-byte loads: on this VM's Zen 5 a
// one-thread read in them ran 3-10% faster than the 16-byte loads the compiler makes of
// the plain loop (medians of 15 interleaved 600 MB reads, two scratch programs of three
// runs each; level at two threads; AVX-512 loads 1-3%), and the limit should be the
// fastest read, not one that flatters the kernels.
inline uint64_t ReadSumPlain(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
    a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

__attribute__((target("avx2"))) inline uint64_t ReadSumAvx2(const uint64_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  const __m256i a = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + ReadSumPlain(p + i, n - i);
}

inline uint64_t ReadSum(const uint64_t* p, size_t n) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2 ? ReadSumAvx2(p, n) : ReadSumPlain(p, n);
}

// One streaming read of `buf` by `threads` threads (the caller's included), each
// summing a contiguous share. Returns the sums folded together (the caller keeps it
// observable) and the read's own time: from the moment every thread is started and
// waiting to the end of the last share, so creating and joining threads (tens of
// microseconds on this VM, a percent or two of a small model's step) does not count
// against the limit.
struct TimedReadResult {
  uint64_t sum = 0;
  double seconds = 0;
};

inline TimedReadResult ThreadedReadSum(std::span<const uint64_t> buf, int threads) {
  using Clock = std::chrono::steady_clock;
  const size_t n = buf.size();
  std::vector<uint64_t> sums(threads);
  std::vector<Clock::time_point> ends(threads);
  std::atomic<int> waiting{0};
  std::atomic<bool> go{false};
  auto share = [&](int t) {
    sums[t] = ReadSum(buf.data() + n * t / threads, n * (t + 1) / threads - n * t / threads);
    ends[t] = Clock::now();
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      waiting.fetch_add(1, std::memory_order_acq_rel);
      while (!go.load(std::memory_order_acquire)) _mm_pause();
      share(t);
    });
  while (waiting.load(std::memory_order_acquire) < threads - 1) _mm_pause();
  const Clock::time_point start = Clock::now();
  go.store(true, std::memory_order_release);
  share(0);
  for (auto& th : pool) th.join();
  TimedReadResult r;
  Clock::time_point last = start;
  for (int t = 0; t < threads; ++t) {
    r.sum ^= sums[t];
    last = std::max(last, ends[t]);
  }
  r.seconds = std::chrono::duration<double>(last - start).count();
  return r;
}

// The thread pool's workers spin for ~0.16 ms after a job before they sleep. A read
// started in that window would share the two vCPUs with a spinning worker and run
// slower, flattering whatever it is the limit for; waiting them out first keeps the
// limit honest.
inline void LetPoolWorkersSleep() { std::this_thread::sleep_for(std::chrono::microseconds(500)); }

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
