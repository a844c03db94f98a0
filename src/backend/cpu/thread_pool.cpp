#include "backend/cpu/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

namespace kvserve {

namespace {
void Range(int64_t n, int64_t grain, int parts, int index, int64_t* begin, int64_t* end) {
  const int64_t units = (n + grain - 1) / grain;
  const int64_t per = units / parts, extra = units % parts;
  const int64_t ub = index * per + std::min<int64_t>(index, extra);
  const int64_t ue = ub + per + (index < extra ? 1 : 0);
  *begin = std::min(n, ub * grain);
  *end = std::min(n, ue * grain);
}

// About 0.2 ms of pause instructions: longer than the gap between two ParallelFor
// calls of one forward pass, far shorter than a step of the engine loop.
constexpr int kSpinIterations = 4096;

inline void CpuRelax() { _mm_pause(); }

// Waits until `value` differs from `old` (or until `done()`), spinning first.
template <typename T, typename Done>
T SpinThenWait(const std::atomic<T>& value, T old, Done done) {
  for (int i = 0; i < kSpinIterations; ++i) {
    const T v = value.load(std::memory_order_acquire);
    if (done(v)) return v;
    CpuRelax();
  }
  while (true) {
    const T v = value.load(std::memory_order_acquire);
    if (done(v)) return v;
    value.wait(v, std::memory_order_acquire);
  }
  (void)old;
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Worker(int index) {
  uint32_t seen = 0;
  while (true) {
    seen = SpinThenWait(generation_, seen, [seen](uint32_t g) { return g != seen; });
    if (stop_) return;
    int64_t b, e;
    Range(job_n_, job_grain_, num_threads_, index, &b, &e);
    if (b < e) (*job_)(b, e, index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (num_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  int64_t b, e;
  Range(n, grain, num_threads_, 0, &b, &e);
  if (b < e) fn(b, e, 0);
  SpinThenWait(pending_, 0, [](int32_t p) { return p == 0; });
}

}  // namespace kvserve
