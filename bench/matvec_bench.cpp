// matvec_bench: the decode kernels alone, against the memory-bandwidth limit.
//
// One decode step is, to first order, one pass of matrix-vector products over every
// weight. This benchmark runs exactly that pass (every layer matrix and the output
// matrix of a model, one activation row, one thread) with each kernel set this CPU
// supports (scalar, AVX2, AVX-512 VNNI) and, interleaved with them, a plain streaming
// read of an anonymous buffer of the same size: the physical limit measured in the
// same run. Repetitions are interleaved so a slow spell of this shared VM hits every
// contender alike; each reports its fastest pass (the least disturbed one: on this
// VM, memory stalls of 100+ ms come and go with other tenants) and its median.
//
// Usage: matvec_bench MODEL.gguf|HF_DIR [--reps N] [--kernels avx2,avx512-vnni]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "read_sum.h"
#include "backend/cpu/kernels.h"
#include "model/model.h"
#include "model/quant.h"

namespace kvserve {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: matvec_bench MODEL [--reps N] [--kernels a,b]\n");
    return 2;
  }
  int reps = 15;
  std::string only;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--kernels")) only = std::string(",") + argv[i + 1] + ",";
  }
  auto model = LoadModel(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "matvec_bench: %s\n", model.status().message().c_str());
    return 1;
  }
  const ModelWeights& W = (*model)->weights;
  std::vector<const Tensor*> mats;
  for (const LayerWeights& l : W.layers)
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) mats.push_back(t);
  mats.push_back(&W.output);
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
  std::vector<uint64_t> stream(static_cast<size_t>(bytes) / sizeof(uint64_t));
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = i;

  // Warm-up: fault in the mapped weights once.
  for (const Tensor* t : mats) DotRows(*sets.front(), *t, x.data(), xq.data(), xs.data(), 0, t->rows(), y.data(), scratch.data());
  std::vector<std::vector<double>> secs(sets.size() + 1);
  uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    sink += ReadSum(stream.data(), stream.size());
    secs[0].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    for (size_t k = 0; k < sets.size(); ++k) {
      t0 = Clock::now();
      for (const Tensor* t : mats) DotRows(*sets[k], *t, x.data(), xq.data(), xs.data(), 0, t->rows(), y.data(), scratch.data());
      secs[k + 1].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      sink += static_cast<uint64_t>(y[0] != 0);
    }
  }
  auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  std::printf("%s: %.1f MiB of layer and output matrices, one thread, %d interleaved passes each\n\n", argv[1], bytes / 1048576.0, reps);
  std::printf("| pass | best ms | best GB/s | fraction of read (best) | median ms | fraction of read (median) |\n|---|---:|---:|---:|---:|---:|\n");
  for (size_t k = 0; k <= sets.size(); ++k) {
    const std::string name = k == 0 ? "streaming read (the limit)" : std::string("matvec, ") + sets[k - 1]->name + " kernels";
    std::printf("| %s | %.1f | %.1f | %.0f%% | %.1f | %.0f%% |\n", name.c_str(), best(secs[k]) * 1e3, bytes / best(secs[k]) / 1e9,
                100.0 * best(secs[0]) / best(secs[k]), Median(secs[k]) * 1e3, 100.0 * Median(secs[0]) / Median(secs[k]));
  }
  if (sink == 42) std::printf(" ");
  return 0;
}

}  // namespace
}  // namespace kvserve

int main(int argc, char** argv) { return kvserve::Main(argc, argv); }
