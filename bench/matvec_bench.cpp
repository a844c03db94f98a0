// matvec_bench: the decode kernels alone, against the memory-bandwidth limit.
//
// One decode step is, to first order, one pass of matrix-vector products over every
// weight. This benchmark runs exactly that pass (every layer matrix and the output
// matrix of a model, one activation row, one thread) with each kernel set this CPU
// supports (scalar, AVX2, AVX-512 VNNI) and, interleaved with them, a plain streaming
// read of an anonymous buffer of the same size (held in 2 MiB pages like the weights,
// unless --weights mapped): the physical limit measured in the
// same run. Repetitions are interleaved so a slow spell of this shared VM hits every
// contender alike; each reports its fastest pass (the least disturbed one: on this
// VM, memory stalls of 100+ ms come and go with other tenants) and its median.
//
// With --threads N (N > 1) the pass runs on the CPU backend's thread pool instead, the
// way a decode step does (one parallel section per matrix, each thread starting on one
// contiguous range of rows, with and without taking over a slower thread's rest), and
// in two other ways for comparison: one section over the rows of all matrices at once
// (no barrier between matrices), and each matrix's rows dealt out round robin in
// chunks of 16 or 64 rows (what a finer split costs: every jump restarts the hardware
// prefetcher), against a read by N threads.
//
// Q8_0 weights in huge pages are also measured re-laid out as the server runs them with
// the AVX-512 kernels (kQ8_0Rows: each chunk's scales, then its values), from a second
// copy, in the same interleaved passes.
//
// One thread: also each kernel set's in-cache ceiling (256 KiB of rows, repeated).
//
// With --shapes ROWSxCOLS,... (no model): for each shape, random Q8_0 matrices of that
// shape, copied until ~600 MB so that nothing is served from a cache, as the file's
// Q8_0 blocks and as kQ8_0Rows, one thread with the best kernel set, 128-row calls as
// a decode step makes them; each layout's time against a read of the same bytes,
// interleaved. This is what chose the kQ8_0Rows chunk layout and its prefetch.
//
// Usage: matvec_bench MODEL.gguf|HF_DIR [--reps N] [--kernels avx2,avx512-vnni] [--threads N]
//                    [--weights huge-pages|mapped]
//        matvec_bench --shapes 1024x2048,1024x5632,1024x14336 [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "read_sum.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/weight_memory.h"
#include "util/huge_page_region.h"

namespace kvserve {
namespace {

using Clock = std::chrono::steady_clock;

int ThreadedPasses(const std::vector<const Tensor*>& mats, const std::vector<const Tensor*>& rows_mats, const DotKernels& k, int threads,
                   int reps, double bytes,
                   std::span<const uint64_t> stream, ReadKernel read_kernel, const std::vector<float>& x, const std::vector<int8_t>& xq,
                   const std::vector<float>& xs, const char* path) {
  ThreadPool pool(threads);
  int64_t max_rows = 0, max_cols = 0, all_rows = 0;
  for (const Tensor* t : mats) {
    max_rows = std::max(max_rows, t->rows());
    max_cols = std::max(max_cols, t->cols());
    all_rows += t->rows();
  }
  std::vector<float> y(max_rows);
  std::vector<std::vector<float>> scratch(threads, std::vector<float>(max_cols));
  constexpr int64_t kGrain = 16;
  auto per_matrix = [&](bool steal, const std::vector<const Tensor*>& set) {
    for (const Tensor* t : set) {
      pool.ParallelFor(t->rows(), [&](int64_t b, int64_t e, int tid) {
        DotRows(k, *t, x.data(), xq.data(), xs.data(), b, e, y.data() + b, scratch[tid].data());
      }, ThreadPool::Options{.grain = kGrain, .steal = steal, .claim = 8});
    }
  };
  auto one_section = [&] {
    // Rows of all matrices as one range; a thread's range may span matrices.
    pool.ParallelFor(all_rows, [&](int64_t b, int64_t e, int tid) {
      int64_t base = 0;
      for (const Tensor* t : mats) {
        const int64_t lo = std::max(b, base), hi = std::min(e, base + t->rows());
        if (lo < hi) DotRows(k, *t, x.data(), xq.data(), xs.data(), lo - base, hi - base, y.data() + (lo - base), scratch[tid].data());
        base += t->rows();
      }
    }, kGrain);
  };
  auto round_robin = [&](int64_t chunk) {
    for (const Tensor* t : mats) {
      const int64_t rows = t->rows();
      pool.ParallelFor(threads, [&](int64_t b, int64_t e, int tid) {
        for (int64_t part = b; part < e; ++part)
          for (int64_t r = part * chunk; r < rows; r += threads * chunk)
            DotRows(k, *t, x.data(), xq.data(), xs.data(), r, std::min(rows, r + chunk), y.data() + r, scratch[tid].data());
      });
    }
  };
  const char* names[] = {"streaming read (the limit)",           "one section per matrix, fixed split",
                         "one section per matrix, stealing",      "one section for all matrices",
                         "per matrix, 16-row chunks round robin", "per matrix, 64-row chunks round robin",
                         "one section per matrix, stealing, Q8_0 as prepared"};
  const int kPasses = rows_mats.empty() ? 6 : 7;
  std::vector<std::vector<double>> secs(kPasses);
  uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    for (int c = 0; c < kPasses; ++c) {
      if (c == 0) {
        LetPoolWorkersSleep();
        const TimedReadResult read = ThreadedReadSum(stream, threads, read_kernel);
        sink += read.sum;
        secs[0].push_back(read.seconds);
        continue;
      }
      const auto t0 = Clock::now();
      if (c == 1) per_matrix(false, mats);
      else if (c == 2) per_matrix(true, mats);
      else if (c == 6) per_matrix(true, rows_mats);
      else if (c == 3) one_section();
      else if (c == 4 || c == 5) round_robin(c == 4 ? 16 : 64);
      secs[c].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  std::printf("%s: %.1f MiB of layer and output matrices, %s kernels, %d threads, %d interleaved passes each\n\n", path,
              bytes / 1048576.0, k.name, threads, reps);
  std::printf("| pass | best ms | best GB/s | fraction of read (best) | median ms | fraction of read (median) |\n|---|---:|---:|---:|---:|---:|\n");
  for (int c = 0; c < kPasses; ++c)
    std::printf("| %s | %.1f | %.1f | %.0f%% | %.1f | %.0f%% |\n", names[c], best(secs[c]) * 1e3, bytes / best(secs[c]) / 1e9,
                100.0 * best(secs[0]) / best(secs[c]), Median(secs[c]) * 1e3, 100.0 * Median(secs[0]) / Median(secs[c]));
  if (sink == 42 || y[0] == 1234.5f) std::printf(" ");
  return 0;
}

// --shapes: Q8_0 blocks against kQ8_0Rows by row length, from memory.
int ShapesMain(const std::string& list, int reps) {
  const DotKernels& k = BestDotKernels();
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::printf("Q8_0 decode from memory by shape: %s kernels, one thread, 128-row calls, ~600 MB per layout, %d interleaved passes\n\n",
              k.name, reps);
  std::printf("| shape (rows x values) | row bytes | Q8_0 blocks GB/s | fraction of read | kQ8_0Rows GB/s | fraction of read | the read (the fastest here) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---|\n");
  for (const std::string& item : Split(list, ',')) {
    int64_t rows = 0, cols = 0;
    if (std::sscanf(item.c_str(), "%ldx%ld", &rows, &cols) != 2 || rows < 1 || cols < 32 || cols % 32 != 0 || cols > 131072) {
      std::fprintf(stderr, "matvec_bench: --shapes: '%s' is not ROWSxCOLS with COLS a multiple of 32 up to 131072\n", item.c_str());
      return 2;
    }
    const size_t row_bytes = RowBytes(DType::kQ8_0, cols), matrix_bytes = row_bytes * rows;
    const int copies = std::max<int>(1, static_cast<int>(600e6 / static_cast<double>(matrix_bytes)));
    const size_t total = matrix_bytes * copies;
    auto blocks = HugePageRegion::Allocate(total);
    auto split = HugePageRegion::Allocate(total);
    if (!blocks.ok() || !split.ok()) {
      std::fprintf(stderr, "matvec_bench: cannot allocate 2 x %zu bytes\n", total);
      return 1;
    }
    std::vector<float> row(cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& v : row) v = u(rng);
      uint8_t* b = (*blocks)->data() + r * row_bytes;
      QuantizeRow(DType::kQ8_0, row.data(), b, cols);
      SplitQ8_0Row(b, (*split)->data() + r * row_bytes, cols);
    }
    for (int c = 1; c < copies; ++c) {
      std::memcpy((*blocks)->data() + c * matrix_bytes, (*blocks)->data(), matrix_bytes);
      std::memcpy((*split)->data() + c * matrix_bytes, (*split)->data(), matrix_bytes);
    }
    std::vector<float> x(cols), y(128), scratch(cols);
    for (float& v : x) v = u(rng);
    std::vector<int8_t> xq(cols);
    std::vector<float> xs(cols / 32);
    QuantizeActivationQ8(x.data(), cols, xq.data(), xs.data());
    auto pass = [&](const uint8_t* base, DType dtype) {
      Tensor t;
      t.dtype = dtype;
      t.shape = {rows, cols};
      t.nbytes = matrix_bytes;
      const auto t0 = Clock::now();
      for (int c = 0; c < copies; ++c) {
        t.data = base + c * matrix_bytes;
        for (int64_t r = 0; r < rows; r += 128)
          DotRows(k, t, x.data(), xq.data(), xs.data(), r, std::min<int64_t>(rows, r + 128), y.data(), scratch.data());
      }
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    std::vector<double> blocks_ratio, split_ratio, blocks_s, split_s;
    const std::span<const uint64_t> words(reinterpret_cast<const uint64_t*>((*blocks)->data()), total / 8);
    const ReadKernel read_kernel = FastestReadKernel(words, 1, 3);
    uint64_t sink = 0;
    for (int rep = 0; rep < reps; ++rep) {
      const double tb = pass((*blocks)->data(), DType::kQ8_0);
      const TimedReadResult read = ThreadedReadSum(words, 1, read_kernel);
      const double ts = pass((*split)->data(), DType::kQ8_0Rows);
      sink += read.sum + static_cast<uint64_t>(y[0] != 0);
      blocks_s.push_back(tb);
      split_s.push_back(ts);
      blocks_ratio.push_back(read.seconds / tb);
      split_ratio.push_back(read.seconds / ts);
    }
    std::printf("| %ld x %ld | %zu | %.1f | %.0f%% | %.1f | %.0f%% | %s |\n", rows, cols, row_bytes, total / Median(blocks_s) / 1e9,
                100 * Median(blocks_ratio), total / Median(split_s) / 1e9, 100 * Median(split_ratio), ReadKernelName(read_kernel));
    if (sink == 42) std::printf(" ");
  }
  return 0;
}

int Main(int argc, char** argv) {
  if (argc >= 3 && !std::strcmp(argv[1], "--shapes")) {
    int reps = 9;
    for (int i = 3; i + 1 < argc; i += 2)
      if (!std::strcmp(argv[i], "--reps")) reps = std::max(1, std::atoi(argv[i + 1]));
    return ShapesMain(argv[2], reps);
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: matvec_bench MODEL [--reps N] [--kernels a,b]\n");
    return 2;
  }
  int reps = 15, threads = 1;
  std::string only;
  WeightMemory memory = WeightMemory::kHugePages;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--kernels")) only = std::string(",") + argv[i + 1] + ",";
    else if (!std::strcmp(argv[i], "--threads")) threads = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--weights")) {
      auto w = ParseWeightMemory(argv[i + 1]);
      if (!w.ok()) {
        std::fprintf(stderr, "matvec_bench: %s\n", w.status().message().c_str());
        return 2;
      }
      memory = *w;
    }
  }
  auto model = LoadModel(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "matvec_bench: %s\n", model.status().message().c_str());
    return 1;
  }
  const bool huge = memory == WeightMemory::kHugePages;
  if (huge) {
    if (Status s = CopyWeightsToHugePages(**model); !s.ok()) {
      std::fprintf(stderr, "matvec_bench: %s\n", s.message().c_str());
      return 1;
    }
  }
  auto matrices = [](const ModelWeights& W) {
    std::vector<const Tensor*> mats;
    for (const LayerWeights& l : W.layers)
      for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) mats.push_back(t);
    mats.push_back(&W.output);
    return mats;
  };
  const std::vector<const Tensor*> mats = matrices((*model)->weights);
  // With a huge-page copy of Q8_0 weights, a second copy re-laid out as kvserve does for
  // the best kernel set (kQ8_0Rows), measured in the same passes as the file layout.
  std::unique_ptr<Model> rows_model;
  std::vector<const Tensor*> rows_mats;
  if (huge && BestDotKernels().prefers_q8_0_rows && mats.front()->dtype == DType::kQ8_0) {
    auto second = LoadModel(argv[1]);
    if (second.ok() && CopyWeightsToHugePages(**second).ok()) {
      rows_model = std::move(second).value();
      PrepareWeightsForCpu(*rows_model, BestDotKernels());
      rows_mats = matrices(rows_model->weights);
    }
  }
  double bytes = 0;
  int64_t max_cols = 0, max_rows = 0;
  for (const Tensor* t : mats) {
    bytes += static_cast<double>(t->nbytes);
    max_cols = std::max(max_cols, t->cols());
    max_rows = std::max(max_rows, t->rows());
  }
  std::vector<float> x(max_cols), y(max_rows), scratch(max_cols);
  for (int64_t i = 0; i < max_cols; ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
  std::vector<int8_t> xq(max_cols);
  std::vector<float> xs(max_cols / 32 + 1);
  QuantizeActivationQ8(x.data(), max_cols / 32 * 32, xq.data(), xs.data());

  std::vector<const DotKernels*> sets;
  for (const DotKernels* k : AvailableDotKernels())
    if (only.empty() ? std::string(k->name) != "scalar" : only.find("," + std::string(k->name) + ",") != std::string::npos) sets.push_back(k);
  // The read is held in the same kind of pages as the weights.
  const ReadBuffer read_buffer(static_cast<size_t>(bytes), huge);
  const std::span<const uint64_t> stream = read_buffer.words();

  // Warm-up: fault in the mapped weights once.
  for (const Tensor* t : mats) DotRows(*sets.front(), *t, x.data(), xq.data(), xs.data(), 0, t->rows(), y.data(), scratch.data());
  for (const Tensor* t : rows_mats) DotRows(BestDotKernels(), *t, x.data(), xq.data(), xs.data(), 0, t->rows(), y.data(), scratch.data());
  // The limit reads the way that is fastest here (read_sum.h).
  const ReadKernel read_kernel = FastestReadKernel(stream, threads, 3);
  std::printf("the limit's read: %s (the fastest of read_sum.h's read kernels here)\n\n", ReadKernelName(read_kernel));
  if (threads > 1) return ThreadedPasses(mats, rows_mats, *sets.back(), threads, reps, bytes, stream, read_kernel, x, xq, xs, argv[1]);
  std::vector<std::vector<double>> secs(sets.size() + 2);
  uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    sink += ReadSum(stream.data(), stream.size(), read_kernel);
    secs[0].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    for (size_t k = 0; k < sets.size(); ++k) {
      t0 = Clock::now();
      for (const Tensor* t : mats) DotRows(*sets[k], *t, x.data(), xq.data(), xs.data(), 0, t->rows(), y.data(), scratch.data());
      secs[k + 1].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      sink += static_cast<uint64_t>(y[0] != 0);
    }
    if (!rows_mats.empty()) {
      t0 = Clock::now();
      for (const Tensor* t : rows_mats) DotRows(BestDotKernels(), *t, x.data(), xq.data(), xs.data(), 0, t->rows(), y.data(), scratch.data());
      secs.back().push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  std::printf("%s: %.1f MiB of layer and output matrices, one thread, %d interleaved passes each\n\n", argv[1], bytes / 1048576.0, reps);
  std::printf("| pass | best ms | best GB/s | fraction of read (best) | median ms | fraction of read (median) |\n|---|---:|---:|---:|---:|---:|\n");
  for (size_t k = 0; k < secs.size(); ++k) {
    if (secs[k].empty()) continue;
    const std::string name = k == 0               ? "streaming read (the limit)"
                             : k <= sets.size() ? std::string("matvec, ") + sets[k - 1]->name + " kernels"
                                                : std::string("matvec, ") + BestDotKernels().name + " kernels, Q8_0 as prepared";
    std::printf("| %s | %.1f | %.1f | %.0f%% | %.1f | %.0f%% |\n", name.c_str(), best(secs[k]) * 1e3, bytes / best(secs[k]) / 1e9,
                100.0 * best(secs[0]) / best(secs[k]), Median(secs[k]) * 1e3, 100.0 * Median(secs[0]) / Median(secs[k]));
  }
  // The kernels' ceiling without DRAM: the first rows of the first matrix (256 KiB,
  // inside the L2) again and again. How far it is above the read is the headroom a
  // kernel has when this VM's bandwidth is at its best.
  {
    const Tensor* first[2] = {mats.front(), rows_mats.empty() ? nullptr : rows_mats.front()};
    const int64_t row_bytes = static_cast<int64_t>(RowBytes(first[0]->dtype, first[0]->cols()));
    const int64_t hot_rows = std::min<int64_t>(first[0]->rows(), std::max<int64_t>(1, (256 << 10) / row_bytes));
    const int kRepeats = 200;
    std::printf("\nIn-cache ceiling (%lld rows of %s, %.0f KiB, %d times; best of %d):\n\n| kernels | GB/s |\n|---|---:|\n",
                static_cast<long long>(hot_rows), first[0]->name.c_str(), hot_rows * row_bytes / 1024.0, kRepeats, reps);
    auto ceiling = [&](const DotKernels& k, const Tensor& t, const std::string& name) {
      double best_s = 1e9;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        for (int i = 0; i < kRepeats; ++i) DotRows(k, t, x.data(), xq.data(), xs.data(), 0, hot_rows, y.data(), scratch.data());
        best_s = std::min(best_s, std::chrono::duration<double>(Clock::now() - t0).count());
        sink += static_cast<uint64_t>(y[0] != 0);
      }
      std::printf("| %s | %.1f |\n", name.c_str(), static_cast<double>(hot_rows * row_bytes) * kRepeats / best_s / 1e9);
    };
    for (const DotKernels* k : sets) ceiling(*k, *first[0], k->name);
    if (first[1] != nullptr)
      ceiling(BestDotKernels(), *first[1],
              std::string(BestDotKernels().name) + (first[1]->dtype == DType::kQ8_0Rows ? ", Q8_0 as kQ8_0Rows" : ", as prepared (Q8_0 blocks)"));
  }
  if (sink == 42) std::printf(" ");
  return 0;
}

}  // namespace
}  // namespace kvserve

int main(int argc, char** argv) { return kvserve::Main(argc, argv); }
