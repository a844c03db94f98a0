// A small fork-join pool: ParallelFor splits [0, n) into one contiguous range per
// thread (the caller's thread included) and returns when all are done.
//
// A decode step issues a few hundred short ParallelFor calls (tens of microseconds
// each), so waking sleeping threads through the kernel every time would cost as much
// as the work. Workers and the caller therefore spin (with a pause instruction) for
// a bounded time before they block on a futex (std::atomic::wait); between engine
// steps the workers go back to sleep.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace kvserve {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // fn(begin, end, thread_index) over disjoint ranges covering [0, n).
  // Ranges are aligned to `grain` where possible. Not reentrant; one caller at a time.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

  // Returns once every worker is awake and has run an empty job: they then spin for
  // the next job for a while instead of sleeping. For a caller about to post jobs after
  // an idle spell (a worker woken from its futex starts a job ~0.1 ms late on this VM).
  void Wake();

  struct Options {
    int64_t grain = 1;
    // Each thread starts on the range a fixed split gives it and claims it from the
    // front, up to `claim` grains at a time (fewer near its end); a thread that runs
    // out takes the back half of the largest range still left. fn may then be called
    // several times per thread. For memory-bound loops: two threads rarely stream
    // equally fast for a whole section, and with a fixed split the faster one waits.
    // Taking whole halves from the back keeps every thread's reads long contiguous
    // runs (a jump costs the hardware prefetcher a restart).
    bool steal = false;
    int64_t claim = 8;
  };
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, const Options& options);

 private:
  void Worker(int index);
  void RunShare(int index);
  void RunOwn(int index);  // claims from the front of shares_[index] until it is empty
  bool Steal(int index);   // moves the back half of the largest other share into shares_[index]

  int num_threads_;
  std::vector<std::thread> workers_;
  // The job being run; written by the caller before `generation_` is bumped (release),
  // read by workers after they see the new generation (acquire).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  Options job_options_;
  // Steal mode: per thread, its remaining range in grains, (front << 32) | back.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::vector<Share> shares_;
  bool stop_ = false;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int32_t> pending_{0};  // workers still running the current job
};

}  // namespace kvserve
