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

// How the limit's read asks for its lines: a plain loop of loads, which leaves the
// stream to the hardware prefetchers, or the same loop with a software prefetch
// kReadPrefetchAhead bytes ahead into L2 (prefetcht1) or into L1 (prefetcht0). On the
// Intel Xeon VM of 2026-12-06 a one-thread read of 600 MB ran at 13.5-13.8 GB/s plain
// and 14.7-15.2 GB/s with either prefetch (medians of 9 interleaved reads, two runs;
// 2-8 KiB ahead alike): there the plain read was no limit, since the decode kernels,
// which prefetch, beat it (docs/bench-decode.md, fourteenth pass). Which is fastest
// depends on the CPU, so the benchmarks measure each and take the fastest
// (FastestReadKernel).
enum class ReadKernel { kPlain, kPrefetchL2, kPrefetchL1 };
inline constexpr ReadKernel kReadKernels[] = {ReadKernel::kPlain, ReadKernel::kPrefetchL2, ReadKernel::kPrefetchL1};
inline constexpr size_t kReadPrefetchAhead = 4096;

inline const char* ReadKernelName(ReadKernel k) {
  switch (k) {
    case ReadKernel::kPlain: return "plain loads";
    case ReadKernel::kPrefetchL2: return "prefetch to L2";
    case ReadKernel::kPrefetchL1: return "prefetch to L1";
  }
  return "?";
}

// kLocality: 0 for no software prefetch, else __builtin_prefetch's locality (2:
// prefetcht1, 3: prefetcht0). The prefetched address may lie past the buffer's end:
// formed as an integer, and a prefetch does not fault.
template <int kLocality>
__attribute__((target("avx2"))) inline uint64_t ReadSumAvx2(const uint64_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if constexpr (kLocality > 0)
      __builtin_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p + i) + kReadPrefetchAhead), 0, kLocality);
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

// Without AVX2 every kernel is the plain loop.
inline uint64_t ReadSum(const uint64_t* p, size_t n, ReadKernel k) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (!avx2) return ReadSumPlain(p, n);
  switch (k) {
    case ReadKernel::kPrefetchL2: return ReadSumAvx2<2>(p, n);
    case ReadKernel::kPrefetchL1: return ReadSumAvx2<3>(p, n);
    case ReadKernel::kPlain: break;
  }
  return ReadSumAvx2<0>(p, n);
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

inline TimedReadResult ThreadedReadSum(std::span<const uint64_t> buf, int threads, ReadKernel kernel) {
  using Clock = std::chrono::steady_clock;
  const size_t n = buf.size();
  std::vector<uint64_t> sums(threads);
  std::vector<Clock::time_point> ends(threads);
  std::atomic<int> waiting{0};
  std::atomic<bool> go{false};
  auto share = [&](int t) {
    sums[t] = ReadSum(buf.data() + n * t / threads, n * (t + 1) / threads - n * t / threads, kernel);
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

// The read kernel whose reads of `buf` by `threads` threads have the shortest median
// time: `rounds` rounds, each reading with every kernel in turn (so a slow spell of the
// machine hits all alike). `medians`, if given, gets each kernel's median seconds in
// kReadKernels' order.
inline ReadKernel FastestReadKernel(std::span<const uint64_t> buf, int threads, int rounds, std::vector<double>* medians = nullptr) {
  constexpr size_t kCount = std::size(kReadKernels);
  std::vector<std::vector<double>> secs(kCount);
  uint64_t sink = 0;
  for (int r = 0; r < rounds; ++r)
    for (size_t k = 0; k < kCount; ++k) {
      const TimedReadResult read = ThreadedReadSum(buf, threads, kReadKernels[k]);
      sink ^= read.sum;
      secs[k].push_back(read.seconds);
    }
  std::vector<double> med(kCount);
  for (size_t k = 0; k < kCount; ++k) {
    std::sort(secs[k].begin(), secs[k].end());
    med[k] = secs[k][secs[k].size() / 2];
  }
  asm volatile("" : : "r"(sink));  // the sums stay live, so no read is optimised away
  if (medians != nullptr) *medians = med;
  return kReadKernels[std::min_element(med.begin(), med.end()) - med.begin()];
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
