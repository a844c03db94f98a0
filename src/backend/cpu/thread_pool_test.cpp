#include "backend/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

namespace kvserve {
namespace {

void SpinFor(std::chrono::microseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

// Every index of [0, n) is visited exactly once, by ranges aligned to the grain
// (except the last), from a valid thread index, each thread given one range at most.
void CheckCover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::vector<std::atomic<int>> calls(pool.num_threads());
  std::atomic<int> bad{0};
  pool.ParallelFor(n, [&](int64_t b, int64_t e, int tid) {
    if (b >= e || b < 0 || e > n || tid < 0 || tid >= pool.num_threads()) ++bad;
    else if (calls[tid].fetch_add(1) > 0) ++bad;
    if (grain > 1 && (b % grain != 0 || (e != n && e % grain != 0))) ++bad;
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
  }, grain);
  EXPECT_EQ(bad.load(), 0) << "n=" << n << " grain=" << grain;
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n << " grain " << grain;
}

// Steal mode: still every index exactly once, grain-aligned ranges, whatever the timing.
TEST(ThreadPool, StealingCoversEveryIndexOnce) {
  std::mt19937 rng(11);
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 300; ++round) {
      const int64_t n = std::uniform_int_distribution<int64_t>(0, 5000)(rng);
      ThreadPool::Options o;
      o.grain = std::uniform_int_distribution<int64_t>(1, 40)(rng);
      o.claim = std::uniform_int_distribution<int64_t>(1, 6)(rng);
      o.steal = true;
      const int slow = round % threads;  // one thread sleeps a little per range: forces steals
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> bad{0};
      pool.ParallelFor(n, [&](int64_t b, int64_t e, int tid) {
        if (b >= e || b < 0 || e > n || b % o.grain != 0 || (e != n && e % o.grain != 0)) ++bad;
        if (tid == slow) std::this_thread::sleep_for(std::chrono::microseconds(20));
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
      }, o);
      ASSERT_EQ(bad.load(), 0) << "n=" << n << " grain=" << o.grain;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n;
    }
  }
}

TEST(ThreadPool, StealingLetsAFastThreadTakeOverASlowOnesRows) {
  ThreadPool pool(2);
  std::atomic<int64_t> by_thread[2] = {0, 0};
  ThreadPool::Options o;
  o.grain = 16;
  o.claim = 1;
  o.steal = true;
  pool.ParallelFor(4096, [&](int64_t b, int64_t e, int tid) {
    if (tid == 1) SpinFor(std::chrono::microseconds(300));  // thread 1 is slow
    by_thread[tid] += e - b;
  }, o);
  EXPECT_EQ(by_thread[0] + by_thread[1], 4096);
  EXPECT_GT(by_thread[0].load(), 3000);  // a fixed split gives each 2048
}

TEST(ThreadPool, CoversEveryIndexOnceWithAFixedSplit) {
  std::mt19937 rng(7);
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 200; ++round) {
      const int64_t n = std::uniform_int_distribution<int64_t>(0, 3000)(rng);
      const int64_t grain = std::uniform_int_distribution<int64_t>(1, 70)(rng);
      CheckCover(pool, n, grain);
    }
  }
}

TEST(ThreadPool, BackToBackJobsSeeTheirOwnFunction) {
  ThreadPool pool(2);
  for (int i = 0; i < 2000; ++i) {
    std::atomic<int64_t> sum{0};
    auto fn = [&, i](int64_t b, int64_t e, int) {
      for (int64_t j = b; j < e; ++j) sum += j + i;
    };
    if (i % 3 == 0) pool.ParallelFor(64, fn, ThreadPool::Options{.grain = 4, .steal = true});
    else pool.ParallelFor(64, fn, 4);
    ASSERT_EQ(sum.load(), 64 * 63 / 2 + 64 * i);
  }
}

// Random pauses between jobs (and wake-ups after some) put the workers in every state
// when a job is posted (spinning, asleep on the futex, waking): every index is still
// covered once.
TEST(ThreadPool, JobsCoverEveryIndexOnceWhetherWorkersAreAwakeOrAsleep) {
  std::mt19937 rng(21);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 300; ++round) {
      if (rng() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
      if (rng() % 5 == 0) pool.Wake();
      const int64_t n = std::uniform_int_distribution<int64_t>(1, 3000)(rng);
      ThreadPool::Options o;
      o.grain = std::uniform_int_distribution<int64_t>(1, 40)(rng);
      o.claim = std::uniform_int_distribution<int64_t>(1, 6)(rng);
      o.steal = rng() % 2 == 0;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> bad{0};
      pool.ParallelFor(n, [&](int64_t b, int64_t e, int tid) {
        if (b >= e || b < 0 || e > n || tid < 0 || tid >= threads) ++bad;
        if (tid == 0 && rng() % 4 == 0) SpinFor(std::chrono::microseconds(5));
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
      }, o);
      ASSERT_EQ(bad.load(), 0) << "round " << round;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n << ", round " << round;
    }
  }
}

}  // namespace
}  // namespace kvserve
