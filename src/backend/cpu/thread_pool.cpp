#include "backend/cpu/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

#include "util/status.h"

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

// About 0.16 ms of pause instructions on this machine's CPU (39 ns each): longer than
// the gap between two ParallelFor calls of one forward pass, far shorter than a step of
// the engine loop.
constexpr int kSpinIterations = 4096;

inline void CpuRelax() { _mm_pause(); }

// Waits until done(value), spinning first; returns the value that satisfied it.
template <typename T, typename Done>
T SpinThenWait(const std::atomic<T>& value, Done done) {
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
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)), shares_(num_threads_) {
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
    seen = SpinThenWait(generation_, [seen](uint32_t g) { return g != seen; });
    if (stop_) return;
    RunShare(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

namespace {
uint64_t Pack(uint64_t front, uint64_t back) { return front << 32 | back; }
uint32_t Front(uint64_t r) { return static_cast<uint32_t>(r >> 32); }
uint32_t Back(uint64_t r) { return static_cast<uint32_t>(r); }
}  // namespace

void ThreadPool::RunOwn(int index) {
  std::atomic<uint64_t>& mine = shares_[index].range;
  const int64_t n = job_n_, grain = job_grain_, claim = std::max<int64_t>(1, job_options_.claim);
  uint64_t r = mine.load(std::memory_order_acquire);
  while (Front(r) < Back(r)) {
    // Big claims while much is left (few atomic operations), single grains at the end
    // (a thread that finishes first then waits for at most one grain of another's).
    const uint32_t f = Front(r), left = Back(r) - f;
    const uint32_t take = static_cast<uint32_t>(std::clamp<int64_t>(left / 4, 1, claim));
    if (mine.compare_exchange_weak(r, Pack(f + take, Back(r)), std::memory_order_acq_rel)) {
      (*job_)(f * grain, std::min(n, (f + take) * grain), index);
      r = mine.load(std::memory_order_acquire);
    }
  }
}

bool ThreadPool::Steal(int index) {
  while (true) {
    int victim = -1;
    uint64_t seen = 0;
    uint32_t most = 1;  // a last grain is left to its owner: taking it would cost a jump for nothing
    for (int v = 0; v < num_threads_; ++v) {
      if (v == index) continue;
      const uint64_t r = shares_[v].range.load(std::memory_order_acquire);
      const uint32_t left = Front(r) < Back(r) ? Back(r) - Front(r) : 0;
      if (left > most) {
        most = left;
        victim = v;
        seen = r;
      }
    }
    if (victim < 0) return false;
    const uint32_t take = most / 2, back = Back(seen);
    if (shares_[victim].range.compare_exchange_strong(seen, Pack(Front(seen), back - take), std::memory_order_acq_rel)) {
      // Our own share is empty, so nobody else changes it: a plain store will do.
      shares_[index].range.store(Pack(back - take, back), std::memory_order_release);
      return true;
    }
  }
}

void ThreadPool::RunShare(int index) {
  if (job_options_.steal) {
    do RunOwn(index);
    while (Steal(index));
  } else {
    int64_t b, e;
    Range(job_n_, job_grain_, num_threads_, index, &b, &e);
    if (b < e) (*job_)(b, e, index);
  }
}

void ThreadPool::Wake() {
  // A fixed split of num_threads_ items gives every thread one.
  ParallelFor(num_threads_, [](int64_t, int64_t, int) {}, 1);
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  Options o;
  o.grain = grain;
  ParallelFor(n, fn, o);
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, const Options& options) {
  if (n <= 0) return;
  const int64_t grain = std::max<int64_t>(1, options.grain);
  if (num_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  job_options_ = options;
  if (options.steal) {
    const int64_t units = (n + grain - 1) / grain;
    KV_CHECK_MSG(units < (int64_t{1} << 32), "ParallelFor: too many grains to steal");
    for (int i = 0; i < num_threads_; ++i) {
      int64_t b, e;
      Range(units, 1, num_threads_, i, &b, &e);
      shares_[i].range.store(Pack(b, e), std::memory_order_relaxed);
    }
  }
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  RunShare(0);
  SpinThenWait(pending_, [](int32_t p) { return p == 0; });
}

}  // namespace kvserve
