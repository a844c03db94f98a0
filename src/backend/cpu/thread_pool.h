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

 private:
  void Worker(int index);

  int num_threads_;
  std::vector<std::thread> workers_;
  // The job being run; written by the caller before `generation_` is bumped (release),
  // read by workers after they see the new generation (acquire).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  bool stop_ = false;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int32_t> pending_{0};  // workers still running the current job
};

}  // namespace kvserve
