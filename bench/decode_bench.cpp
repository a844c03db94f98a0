// decode_bench: how close CPU decode gets to the memory-bandwidth limit.
//
// In one run: (1) this machine's streaming read bandwidth (1 and 2 threads, a buffer
// far larger than the caches), read in whichever of read_sum.h's ways (plain loads, or
// with a software prefetch into L2 or L1) is fastest here, the read every limit below
// uses; (2) for synthetic models of real shapes (generated into
// a cache dir with the synth tool if missing), decode tokens/s of one sequence after a
// prefilled context and prefill tokens/s of one prompt, at 1 and 2 threads. Decode
// reads every weight and the sequence's KV cache once per token, so the time to read
// that many bytes (measured beside each step) over the step's time is the fraction of
// the bandwidth limit achieved: paired (each step followed by a read) and in steady
// state (runs of steps in a row against runs of reads in a row).
//
// Usage: decode_bench [--cache-dir DIR] [--models a:q8_0,b:f16] [--threads 1,2]
//                     [--context 128] [--decode-steps 32] [--prompt 256] [--bw-mib 1024]
//                     [--weights huge-pages|mapped] [--compare-weight-memory] [--phases]
//                     [--file-layout] [--kv-dtypes f16,f32] [--compare-kv-dtypes]
//                     [--compare-row-prefetch 3/3,4/6] [--compare-short-rows] [--compare-avx512-sets]
//
// Copied weights are prepared as kvserve prepares them (PrepareWeightsForCpu: Q8_0
// matrices as kQ8_0Rows with the AVX-512 kernels); --file-layout keeps the
// file's Q8_0 blocks everywhere. The
// weight-memory comparison keeps the file's layout on both sides (page sizes only).
//
// --kv-dtypes: the KV cache's element types to run, each its own row (default f16, as
// kvserve serves; f32 doubles the bytes attention reads). --compare-kv-dtypes: decode
// steps alternated between an f32 and an f16 KV cache over the same prepared weights.
//
// --compare-row-prefetch A/B,C/D: decode steps alternated between two AVX-512 kernel
// sets whose kQ8_0Rows kernel prefetches A (C) chunks ahead on rows of 1,024+ values and
// B (D) on shorter ones (RowPrefetchVariant in backend/cpu/kernels.h), over the same
// prepared weights; the speed-up is the first's step time over the second's.
//
// --compare-short-rows: decode steps alternated between the AVX-512 kernel set as it
// is (kQ8_0Rows rows shorter than 1,024 values four at a time) and a copy that takes
// them one at a time (ShortRowsOneAtATime in backend/cpu/kernels.h).
//
// --compare-avx512-sets: decode steps alternated between the AVX-512 kernel set this CPU
// runs and each of the others ("avx512-vnni", "avx512-vnni-zen4", "avx512-vnni-intel":
// BestDotKernels in backend/cpu/kernels.h), over the same prepared weights; the
// speed-up is that of the set this CPU runs.
//
// --phases: after each row, where the timed decode steps spent their wall time, phase by
// phase (CpuForwardProfile), and each weight-reading phase's speed against the row's
// read limit.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "read_sum.h"
#include "backend/cpu/cpu_backend.h"
#include "model/model.h"
#include "model/weight_memory.h"
#include "tools/synth_model.h"

namespace kvserve {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU seconds used by this process (all threads). On a shared machine, work per
// CPU-second divided across the threads estimates what the cores would do alone.
double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// A wall-clock and a CPU-time rate of the same measurement.
struct Rate {
  double wall = 0;  // per wall second
  double cpu = 0;   // per (CPU second / threads)
};

struct Args {
  std::string cache_dir;
  std::vector<std::pair<std::string, std::string>> models = {{"tinyllama-1.1b", "q8_0"}, {"tinyllama-1.1b", "f16"}, {"smollm2-135m", "q8_0"}};
  std::vector<int> threads = {1, 2};
  int context = 128;
  int decode_steps = 32;
  int prompt = 256;
  size_t bw_bytes = size_t{1} << 30;
  int bw_reps = 5;
  WeightMemory weights = WeightMemory::kHugePages;
  bool compare_weight_memory = false;
  bool compare_kv_dtypes = false;
  bool compare_short_rows = false;
  bool compare_avx512_sets = false;
  std::vector<std::pair<int, int>> row_prefetch;  // --compare-row-prefetch: two (long, short) distances
  bool phases = false;
  bool file_layout = false;
  std::vector<KvCacheDType> kv_dtypes = {KvCacheDType::kF16};
};

// The 1-minute load average: other processes on the machine skew every figure.
std::string LoadAverage() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "unknown";
  char buf[64] = {};
  const bool ok = std::fgets(buf, sizeof(buf), f) != nullptr;
  std::fclose(f);
  return ok ? Split(buf, ' ').front() : "unknown";
}

// --- memory bandwidth -------------------------------------------------------------

// Time of one streaming read of `buf` by `threads` threads.
double TimedRead(std::span<const uint64_t> buf, int threads, ReadKernel kernel, uint64_t* sink) {
  const TimedReadResult r = ThreadedReadSum(buf, threads, kernel);
  *sink ^= r.sum;
  return r.seconds;
}

// Best-of-`reps` read bandwidth in bytes/s with `threads` threads, each streaming its share.
Rate MeasureReadBandwidth(std::span<const uint64_t> buf, int threads, ReadKernel kernel, int reps) {
  Rate best;
  uint64_t sink = 0;
  const double bytes = static_cast<double>(buf.size() * sizeof(uint64_t));
  for (int r = 0; r < reps; ++r) {
    const double c0 = ProcessCpuSeconds();
    const double secs = TimedRead(buf, threads, kernel, &sink);
    const double cpu = (ProcessCpuSeconds() - c0) / threads;
    best.wall = std::max(best.wall, bytes / secs);
    best.cpu = std::max(best.cpu, bytes / cpu);
  }
  if (sink == 0x5EED) std::fprintf(stderr, " ");  // keeps the sums observable
  return best;
}

// --- models -----------------------------------------------------------------------

// Bytes of weights one decode step reads: every matrix and norm, plus one embedding row.
double WeightBytesPerToken(const Model& m) {
  const ModelWeights& w = m.weights;
  double bytes = static_cast<double>(RowBytes(w.tok_embeddings.dtype, w.tok_embeddings.cols()));
  bytes += w.output.nbytes + w.output_norm.nbytes;
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm, &l.ffn_norm, &l.w_gate,
                            &l.w_up, &l.w_down}) {
      if (t->present()) bytes += t->nbytes;
    }
  }
  return bytes;
}

// Bytes of KV cache one decode step reads at the middle of the paired steps' contexts
// (each key and value of every layer's KV heads once: attention reads them whole).
// They count toward the step's limit as the weights do; at a 128-token context they are
// 2-3% of SmolLM2-135M's weights and 0.3% of TinyLlama's, at 1,000 tokens 16% / 2%.
double KvBytesPerStep(const Args& a, const Model& m, KvCacheDType kv) {
  const double tokens = a.context + 2 + 1.5 * a.decode_steps;
  return static_cast<double>(KvBlockBytes(m.config, 1, kv)) * tokens;
}

StatusOr<std::string> EnsureModel(const Args& a, const std::string& shape, const std::string& dtype) {
  const std::string path = (fs::path(a.cache_dir) / fmt::format("{}-{}.gguf", shape, dtype)).string();
  if (fs::exists(path)) return path;
  std::error_code ec;
  fs::create_directories(a.cache_dir, ec);
  SynthOptions o;
  o.shape = shape;
  KV_ASSIGN_OR_RETURN(o.dtype, ParseSynthDType(dtype));
  o.seed = 1;
  std::fprintf(stderr, "generating %s ...\n", path.c_str());
  const auto t0 = Clock::now();
  KV_ASSIGN_OR_RETURN(SynthResult r, WriteSynthModel(o, path));
  std::fprintf(stderr, "  %.1f MiB in %.1fs\n", r.tensor_bytes / 1048576.0, Seconds(t0, Clock::now()));
  return path;
}

struct RunResult {
  Rate decode_tps;
  double decode_median_tps = 0;  // 1 / median step time
  double read_limit_tps = 0;     // 1 / median time to read the step's bytes (weights and KV) once
  double paired_fraction = 0;    // median over steps of (read time / step time)
  double steady_fraction = 0;    // median over runs of (median read / median step), each side in a row
  Rate prefill_tps;
  CpuForwardProfile phases;  // of the timed steps in a row (with --phases)
};

// The bytes each profile phase reads per decode step from memory (0: none to speak of):
// weights, and attention's KV.
std::vector<double> PhaseBytes(const Model& m, double kv_bytes) {
  std::vector<double> bytes(CpuForwardProfile::kNumPhases, 0.0);
  bytes[CpuForwardProfile::kAttention] = kv_bytes;
  for (const LayerWeights& l : m.weights.layers) {
    bytes[CpuForwardProfile::kQkv] += static_cast<double>(l.wq.nbytes + l.wk.nbytes + l.wv.nbytes);
    bytes[CpuForwardProfile::kAttentionOut] += static_cast<double>(l.wo.nbytes);
    bytes[CpuForwardProfile::kMlpGateUp] += static_cast<double>(l.w_gate.nbytes + l.w_up.nbytes);
    bytes[CpuForwardProfile::kMlpDown] += static_cast<double>(l.w_down.nbytes);
  }
  bytes[CpuForwardProfile::kLogits] = static_cast<double>(m.weights.output.nbytes);
  return bytes;
}

void PrintPhases(const RunResult& r, const Model& m, double bytes_per_token, double kv_bytes) {
  const CpuForwardProfile& p = r.phases;
  if (p.passes == 0) return;
  const std::vector<double> bytes = PhaseBytes(m, kv_bytes);
  const double limit_gbs = bytes_per_token * r.read_limit_tps / 1e9;  // the row's read limit
  double total = 0;
  for (double s : p.seconds) total += s;
  std::printf("\n| phase (%lld steps) | ms per step | share of step | MB read | GB/s | of the read limit (%.1f GB/s) |\n",
              static_cast<long long>(p.passes), limit_gbs);
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < CpuForwardProfile::kNumPhases; ++i) {
    const double secs = p.seconds[i] / p.passes;
    if (bytes[i] > 0) {
      const double gbs = bytes[i] / secs / 1e9;
      std::printf("| %s | %.3f | %.1f%% | %.1f | %.1f | %.0f%% |\n", CpuForwardProfile::Name(i), secs * 1e3, 100.0 * p.seconds[i] / total,
                  bytes[i] / 1e6, gbs, 100.0 * gbs / limit_gbs);
    } else {
      std::printf("| %s | %.3f | %.1f%% | | | |\n", CpuForwardProfile::Name(i), secs * 1e3, 100.0 * p.seconds[i] / total);
    }
  }
  std::printf("\n");
}

// One sequence through the backend, blocks 0.. in order.
BatchDescriptor SequenceBatch(const std::vector<int32_t>& tokens, int context_len, int block_size) {
  BatchDescriptor b;
  b.tokens = tokens;
  const int n = static_cast<int>(tokens.size());
  for (int j = 0; j < n; ++j) b.positions.push_back(context_len + j);
  const int blocks = (context_len + n + block_size - 1) / block_size;
  for (int i = 0; i < blocks; ++i) b.block_tables.push_back(i);
  SequenceSlice s;
  s.token_begin = 0;
  s.num_tokens = n;
  s.context_len = context_len;
  s.block_table_begin = 0;
  s.num_blocks = blocks;
  b.seqs.push_back(s);
  b.logit_rows.push_back(n - 1);
  return b;
}

constexpr int kBlockSize = 16;

// The steady-state comparison: runs of kSteadyRun steps in a row against runs of as
// many reads in a row, each run after one untimed step (or read) that brings it into
// its own condition.
constexpr int kSteadyRun = 4;
int SteadyRuns(const Args& a) { return std::max(3, a.decode_steps / kSteadyRun); }

// A backend with room for the longest sequence a run builds: the prompt, or the context
// plus two warm-up steps, two rounds of timed steps and the steady-state runs.
CpuBackendConfig BenchBackendConfig(const Args& a, int threads, KvCacheDType kv) {
  CpuBackendConfig cfg;
  cfg.num_threads = threads;
  cfg.kv.dtype = kv;
  cfg.kv.block_size = kBlockSize;
  const int steps = 2 + 2 * a.decode_steps + SteadyRuns(a) * (kSteadyRun + 1);
  cfg.kv.num_blocks = (std::max(a.context + steps, a.prompt) + kBlockSize - 1) / kBlockSize + 1;
  return cfg;
}

// `read_buf`: as many bytes as one decode step reads; each timed step is followed by a
// timed read of it with as many threads, so every step has its own bandwidth limit,
// measured within a fraction of a second of it.
// read_buf, read: the limit's bytes and how they are read (the fastest read kernel for
// `threads`).
StatusOr<RunResult> RunModel(const Args& a, const Model& model, int threads, KvCacheDType kv, std::span<const uint64_t> read_buf,
                             ReadKernel read_kernel) {
  const int block_size = kBlockSize;
  CpuForwardProfile profile;
  CpuBackendConfig cfg = BenchBackendConfig(a, threads, kv);
  if (a.phases) cfg.profile = &profile;
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateCpuBackend(model, cfg));
  const int vocab = model.config.vocab_size;
  std::vector<float> logits(vocab);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, std::min(vocab, 32000) - 1);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = tok(rng);
    return t;
  };
  auto argmax = [&] { return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()); };
  auto check_finite = [&](const char* what) -> Status {
    for (float x : logits) {
      if (!std::isfinite(x)) return Status::Internal(fmt::format("{}: non-finite logit after {}", model.path, what));
    }
    return Status::Ok();
  };

  RunResult r;
  // Prefill: one prompt in one forward pass.
  {
    const BatchDescriptor b = SequenceBatch(random_tokens(a.prompt), 0, block_size);
    const auto t0 = Clock::now();
    const double c0 = ProcessCpuSeconds();
    KV_RETURN_IF_ERROR(backend->Forward(b, logits));
    r.prefill_tps.wall = a.prompt / Seconds(t0, Clock::now());
    r.prefill_tps.cpu = a.prompt / ((ProcessCpuSeconds() - c0) / threads);
    KV_RETURN_IF_ERROR(check_finite("prefill"));
  }
  // Decode: a context, two warm-up steps, then the timed steps (greedy feedback).
  {
    KV_RETURN_IF_ERROR(backend->Forward(SequenceBatch(random_tokens(a.context), 0, block_size), logits));
    int pos = a.context;
    for (int s = 0; s < 2; ++s, ++pos) KV_RETURN_IF_ERROR(backend->Forward(SequenceBatch({argmax()}, pos, block_size), logits));
    profile = CpuForwardProfile();
    const auto t0 = Clock::now();
    const double c0 = ProcessCpuSeconds();
    std::vector<double> step_seconds, read_seconds, ratios;
    uint64_t sink = 0;
    for (int s = 0; s < a.decode_steps; ++s, ++pos) {
      const auto s0 = Clock::now();
      KV_RETURN_IF_ERROR(backend->Forward(SequenceBatch({argmax()}, pos, block_size), logits));
      step_seconds.push_back(Seconds(s0, Clock::now()));
    }
    r.decode_tps.wall = a.decode_steps / Seconds(t0, Clock::now());
    r.decode_tps.cpu = a.decode_steps / ((ProcessCpuSeconds() - c0) / threads);
    r.phases = profile;
    // Paired: step, then a read of the same bytes. This VM's memory stalls for hundreds
    // of ms at times (other tenants); the median of the per-pair ratios is immune to
    // spells that hit a step and its read alike, and the medians to the rest.
    for (int s = 0; s < a.decode_steps; ++s, ++pos) {
      // The read has let the pool's workers fall asleep; in a serving loop the steps
      // follow each other while they still spin.
      backend->WakeThreads();
      const auto s0 = Clock::now();
      KV_RETURN_IF_ERROR(backend->Forward(SequenceBatch({argmax()}, pos, block_size), logits));
      const double step = Seconds(s0, Clock::now());
      LetPoolWorkersSleep();
      const double read = TimedRead(read_buf, threads, read_kernel, &sink);
      step_seconds.push_back(step);
      read_seconds.push_back(read);
      ratios.push_back(read / step);
    }
    r.decode_median_tps = 1.0 / Median(step_seconds);
    r.read_limit_tps = 1.0 / Median(read_seconds);
    r.paired_fraction = Median(ratios);
    // Steady state. A pair above starts each side in the other's wake: the step after a
    // read of other bytes, the read after a step. But a buffer of SmolLM2's size read
    // again right away is partly served from the L3 cache (see "How the limit is
    // measured" in docs/bench-decode.md), and so are a serving loop's steps, which
    // follow each other over the same weights. Here each side follows itself: a run of
    // steps in a row, then a run of reads in a row of one buffer of the same bytes; the
    // fraction is the median over runs of (median read / median step).
    std::vector<double> steady_ratios;
    for (int run = 0; run < SteadyRuns(a); ++run) {
      backend->WakeThreads();
      std::vector<double> steps, reads;
      for (int s = 0; s <= kSteadyRun; ++s, ++pos) {
        const auto s0 = Clock::now();
        KV_RETURN_IF_ERROR(backend->Forward(SequenceBatch({argmax()}, pos, block_size), logits));
        if (s > 0) steps.push_back(Seconds(s0, Clock::now()));
      }
      LetPoolWorkersSleep();
      for (int s = 0; s <= kSteadyRun; ++s) {
        const double read = TimedRead(read_buf, threads, read_kernel, &sink);
        if (s > 0) reads.push_back(read);
      }
      steady_ratios.push_back(Median(reads) / Median(steps));
    }
    r.steady_fraction = Median(steady_ratios);
    if (sink == 0x5EED) std::fprintf(stderr, " ");
    KV_RETURN_IF_ERROR(check_finite("decode"));
  }
  return r;
}

// Decode steps alternating between two backends (the same context on each): both see
// the same moments of this VM's drifting bandwidth, so the per-pair ratio isolates what
// differs between them.
struct Alternation {
  double first_tps = 0, second_tps = 0;  // 1 / median step
  double speedup = 0;                    // median over pairs of first time / second time
};

StatusOr<Alternation> AlternateDecode(const Args& a, Backend& first, Backend& second, int vocab) {
  const int block_size = kBlockSize;
  std::vector<float> logits(vocab);
  std::mt19937 rng(99);
  std::vector<int32_t> context(a.context);
  for (auto& t : context) t = static_cast<int32_t>(rng() % std::min(vocab, 32000));
  for (Backend* b : {&first, &second}) {
    KV_RETURN_IF_ERROR(b->Forward(SequenceBatch(context, 0, block_size), logits));
    for (int s = 0; s < 2; ++s) KV_RETURN_IF_ERROR(b->Forward(SequenceBatch({7}, a.context + s, block_size), logits));
  }
  std::vector<double> t1, t2, ratios;
  for (int s = 0; s < 2 * a.decode_steps; ++s) {
    const int pos = a.context + 2 + s;
    // Alternate which goes first, so neither always follows the other's cache footprint.
    double t[2];
    for (int k = 0; k < 2; ++k) {
      const int which = (k + s) % 2;
      Backend* b = which == 0 ? &first : &second;
      b->WakeThreads();  // its workers slept through the other's step
      const auto t0 = Clock::now();
      KV_RETURN_IF_ERROR(b->Forward(SequenceBatch({static_cast<int32_t>(s % 100 + 5)}, pos, block_size), logits));
      t[which] = Seconds(t0, Clock::now());
    }
    t1.push_back(t[0]);
    t2.push_back(t[1]);
    ratios.push_back(t[0] / t[1]);
  }
  return Alternation{1.0 / Median(t1), 1.0 / Median(t2), Median(ratios)};
}

// One backend reading the weights from the file mapping, one from a huge-page copy.
StatusOr<Alternation> CompareWeightMemory(const Args& a, const Model& mapped, const Model& huge, int threads) {
  const CpuBackendConfig cfg = BenchBackendConfig(a, threads, a.kv_dtypes.front());
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> on_mapped, CreateCpuBackend(mapped, cfg));
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> on_huge, CreateCpuBackend(huge, cfg));
  return AlternateDecode(a, *on_mapped, *on_huge, mapped.config.vocab_size);
}

// The same weights under an f32 and an f16 KV cache.
StatusOr<Alternation> CompareKvDTypes(const Args& a, const Model& model, int threads) {
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> f32, CreateCpuBackend(model, BenchBackendConfig(a, threads, KvCacheDType::kF32)));
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> f16, CreateCpuBackend(model, BenchBackendConfig(a, threads, KvCacheDType::kF16)));
  return AlternateDecode(a, *f32, *f16, model.config.vocab_size);
}

// The same weights under two kernel sets.
StatusOr<Alternation> CompareKernelSets(const Args& a, const Model& model, int threads, const DotKernels& first, const DotKernels& second) {
  CpuBackendConfig cfg = BenchBackendConfig(a, threads, a.kv_dtypes.front());
  cfg.kernels = &first;
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> one, CreateCpuBackend(model, cfg));
  cfg.kernels = &second;
  KV_ASSIGN_OR_RETURN(std::unique_ptr<Backend> two, CreateCpuBackend(model, cfg));
  return AlternateDecode(a, *one, *two, model.config.vocab_size);
}

// One table row per model and thread count: `compare(model, threads)` alternates two
// backends over the model's weights (copied to huge pages when a.weights says so, and
// prepared as kvserve prepares them when `prepare`). Returns 1 if any row failed.
template <typename Compare>
int AlternationRows(const Args& a, bool prepare, Compare compare) {
  const bool huge = a.weights == WeightMemory::kHugePages;
  int rc = 0;
  for (const auto& [shape, dtype] : a.models) {
    auto path = EnsureModel(a, shape, dtype);
    if (!path.ok()) continue;
    auto model = LoadModel(*path);
    if (!model.ok() || (huge && !CopyWeightsToHugePages(**model).ok())) {
      std::fprintf(stderr, "decode_bench: %s: cannot load for the comparison\n", path->c_str());
      rc = 1;
      continue;
    }
    if (prepare) PrepareWeightsForCpu(**model, BestDotKernels());
    for (int t : a.threads) {
      StatusOr<Alternation> c = compare(**model, t);
      if (!c.ok()) {
        std::fprintf(stderr, "decode_bench: %s\n", c.status().message().c_str());
        rc = 1;
        continue;
      }
      std::printf("| %s | %s | %d | %.2f | %.2f | %.3fx |\n", shape.c_str(), dtype.c_str(), t, c->first_tps, c->second_tps, c->speedup);
      std::fflush(stdout);
    }
  }
  return rc;
}

std::string DefaultCacheDir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) return (exe.parent_path().parent_path() / "synth-cache").string();  // <build>/bin/.. -> <build>/synth-cache
  return "synth-cache";
}

int Main(int argc, char** argv) {
  Args a;
  a.cache_dir = DefaultCacheDir();
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "decode_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--cache-dir") a.cache_dir = val();
    else if (k == "--context") a.context = std::stoi(val());
    else if (k == "--decode-steps") a.decode_steps = std::stoi(val());
    else if (k == "--prompt") a.prompt = std::stoi(val());
    else if (k == "--bw-mib") a.bw_bytes = std::stoull(val()) << 20;
    else if (k == "--compare-weight-memory") a.compare_weight_memory = true;
    else if (k == "--compare-kv-dtypes") a.compare_kv_dtypes = true;
    else if (k == "--compare-avx512-sets") {
      if (Avx512DefaultDotKernels() == nullptr) {
        std::fprintf(stderr, "decode_bench: --compare-avx512-sets needs AVX-512 VNNI\n");
        return 2;
      }
      a.compare_avx512_sets = true;
    }
    else if (k == "--compare-short-rows") {
      if (ShortRowsOneAtATime() == nullptr) {
        std::fprintf(stderr, "decode_bench: --compare-short-rows needs AVX-512 VNNI\n");
        return 2;
      }
      a.compare_short_rows = true;
    }
    else if (k == "--compare-row-prefetch") {
      for (const std::string& item : Split(val(), ',')) {
        int l = 0, sh = 0;
        if (std::sscanf(item.c_str(), "%d/%d", &l, &sh) != 2 || RowPrefetchVariant(l, sh) == nullptr) {
          std::fprintf(stderr, "decode_bench: --compare-row-prefetch: no kernel set '%s' on this CPU (LONG/SHORT chunks; long 2, 3, 4, 6; short 3, 4, 6, 9; AVX-512 VNNI)\n", item.c_str());
          return 2;
        }
        a.row_prefetch.emplace_back(l, sh);
      }
      if (a.row_prefetch.size() != 2) {
        std::fprintf(stderr, "decode_bench: --compare-row-prefetch wants two distances, A/B,C/D\n");
        return 2;
      }
    }
    else if (k == "--phases") a.phases = true;
    else if (k == "--file-layout") a.file_layout = true;
    else if (k == "--kv-dtypes") {
      a.kv_dtypes.clear();
      for (const std::string& d : Split(val(), ',')) {
        auto kv = ParseKvCacheDType(d, "--kv-dtypes");
        if (!kv.ok()) {
          std::fprintf(stderr, "decode_bench: %s\n", kv.status().message().c_str());
          return 2;
        }
        a.kv_dtypes.push_back(*kv);
      }
    }
    else if (k == "--weights") {
      auto w = ParseWeightMemory(val());
      if (!w.ok()) {
        std::fprintf(stderr, "decode_bench: %s\n", w.status().message().c_str());
        return 2;
      }
      a.weights = *w;
    }
    else if (k == "--threads") {
      a.threads.clear();
      for (const std::string& t : Split(val(), ',')) a.threads.push_back(std::stoi(t));
    } else if (k == "--models") {
      a.models.clear();
      for (const std::string& m : Split(val(), ',')) {
        const auto colon = m.find(':');
        if (colon == std::string::npos) {
          std::fprintf(stderr, "decode_bench: --models wants shape:dtype entries, got '%s'\n", m.c_str());
          return 2;
        }
        a.models.emplace_back(m.substr(0, colon), m.substr(colon + 1));
      }
    } else {
      std::fprintf(stderr, "decode_bench: unknown option '%s'\n", k.c_str());
      return 2;
    }
  }
  if (a.context < 1 || a.decode_steps < 1 || a.prompt < 1 || a.threads.empty()) {
    std::fprintf(stderr, "decode_bench: --context, --decode-steps, --prompt must be >= 1\n");
    return 2;
  }

  std::printf("machine: %u hardware threads; load average (1 min) at start: %s\n\n", std::thread::hardware_concurrency(), LoadAverage().c_str());
  // Bandwidth first, with the buffer's pages already faulted in.
  // Per thread count, the fastest way to read (read_sum.h), then its bandwidth; every
  // limit below reads that way.
  std::vector<Rate> bw;
  std::vector<ReadKernel> read_kernels;
  std::vector<std::vector<double>> read_medians(a.threads.size());
  const bool huge = a.weights == WeightMemory::kHugePages;
  {
    const ReadBuffer buf(a.bw_bytes, huge);
    for (size_t i = 0; i < a.threads.size(); ++i) {
      read_kernels.push_back(FastestReadKernel(buf.words(), a.threads[i], a.bw_reps, &read_medians[i]));
      bw.push_back(MeasureReadBandwidth(buf.words(), a.threads[i], read_kernels[i], a.bw_reps));
    }
  }
  std::printf("## Memory read bandwidth (%zu MiB buffer)\n\n", a.bw_bytes >> 20);
  std::printf("Each read kernel's median over %d interleaved reads; the fastest is the limit's read for that thread count, and its "
              "best of %d more reads the bandwidth.\n\n", a.bw_reps, a.bw_reps);
  std::printf("| threads |");
  for (ReadKernel k : kReadKernels) std::printf(" %s GB/s (median) |", ReadKernelName(k));
  std::printf(" the limit's read | GB/s (wall, best) | GB/s (CPU time) |\n|---:|");
  for (size_t k = 0; k < std::size(kReadKernels); ++k) std::printf("---:|");
  std::printf("---|---:|---:|\n");
  const double bw_bytes = static_cast<double>(a.bw_bytes / sizeof(uint64_t) * sizeof(uint64_t));
  for (size_t i = 0; i < a.threads.size(); ++i) {
    std::printf("| %d |", a.threads[i]);
    for (double m : read_medians[i]) std::printf(" %.1f |", bw_bytes / m / 1e9);
    std::printf(" %s | %.1f | %.1f |\n", ReadKernelName(read_kernels[i]), bw[i].wall / 1e9, bw[i].cpu / 1e9);
  }
  std::printf("\n## Decode and prefill (CPU backend, fast path)\n\n");
  std::printf("decode: %d-token context, then %d timed steps in a row (the mean, wall clock, and per CPU second / threads "
              "against the best read bandwidth above) and %d steps each followed by a timed streaming read (the limit's read above) of as many bytes as the "
              "step's weights and KV (at the middle of those steps' contexts) with as many threads (the limit). BW fraction = median over those pairs of read time / step time. "
              "Steady state: %d runs of %d steps in a row, each followed by %d reads in a row of that buffer (each run after an "
              "untimed step or read); the median over runs of median read / median step. "
              "prefill: one %d-token prompt in one forward pass.\n\n",
              a.context, a.decode_steps, a.decode_steps, SteadyRuns(a), kSteadyRun, kSteadyRun, a.prompt);
  std::printf("| model | dtype | KV | weight MiB/token | KV MiB/step | threads | decode tok/s (median step) | read limit tok/s (median) | BW fraction (paired median) | BW fraction (steady state) | decode tok/s (mean, wall) | BW fraction CPU time | prefill tok/s wall | prefill tok/s CPU |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
  int rc = 0;
  for (const auto& [shape, dtype] : a.models) {
    auto path = EnsureModel(a, shape, dtype);
    if (!path.ok()) {
      std::fprintf(stderr, "decode_bench: %s\n", path.status().message().c_str());
      rc = 1;
      continue;
    }
    auto model = LoadModel(*path);
    if (!model.ok()) {
      std::fprintf(stderr, "decode_bench: %s\n", model.status().message().c_str());
      rc = 1;
      continue;
    }
    if (huge) {
      if (Status s = CopyWeightsToHugePages(**model); !s.ok()) {
        std::fprintf(stderr, "decode_bench: %s\n", s.message().c_str());
        rc = 1;
        continue;
      }
      if (!a.file_layout) PrepareWeightsForCpu(**model, BestDotKernels());
    }
    const double weight_bytes = WeightBytesPerToken(**model);
    const ReadBuffer read_buf(static_cast<size_t>(weight_bytes + KvBytesPerStep(a, **model, KvCacheDType::kF32)), huge);
    for (size_t ti = 0; ti < a.threads.size(); ++ti)
      for (KvCacheDType kv : a.kv_dtypes) {
        const double kv_bytes = KvBytesPerStep(a, **model, kv), bytes = weight_bytes + kv_bytes;
        auto r = RunModel(a, **model, a.threads[ti], kv, read_buf.words().first(static_cast<size_t>(bytes) / sizeof(uint64_t)), read_kernels[ti]);
        if (!r.ok()) {
          std::fprintf(stderr, "decode_bench: %s\n", r.status().message().c_str());
          rc = 1;
          continue;
        }
        std::printf("| %s | %s | %s | %.1f | %.1f | %d | %.2f | %.2f | %.0f%% | %.0f%% | %.2f | %.0f%% | %.1f | %.1f |\n", shape.c_str(), dtype.c_str(),
                    KvCacheDTypeName(kv), weight_bytes / 1048576.0, kv_bytes / 1048576.0, a.threads[ti], r->decode_median_tps, r->read_limit_tps,
                    100.0 * r->paired_fraction, 100.0 * r->steady_fraction, r->decode_tps.wall, 100.0 * bytes * r->decode_tps.cpu / bw[ti].cpu, r->prefill_tps.wall,
                    r->prefill_tps.cpu);
        if (a.phases) PrintPhases(*r, **model, bytes, kv_bytes);
        std::fflush(stdout);
      }
  }
  if (a.compare_weight_memory) {
    std::printf("\n## Weight memory: huge-page copy vs file mapping (decode steps interleaved, %d pairs)\n\n", 2 * a.decode_steps);
    std::printf("| model | dtype | threads | mapped tok/s (median) | huge pages tok/s (median) | speed-up (paired median) | MiB in 2 MiB pages |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (const auto& [shape, dtype] : a.models) {
      auto path = EnsureModel(a, shape, dtype);
      if (!path.ok()) continue;
      auto mapped = LoadModel(*path);
      auto huge = LoadModel(*path);
      if (!mapped.ok() || !huge.ok() || !CopyWeightsToHugePages(**huge).ok()) {
        std::fprintf(stderr, "decode_bench: %s: cannot load for the comparison\n", path->c_str());
        rc = 1;
        continue;
      }
      // Both in the file's layout: this compares page sizes only.
      for (int t : a.threads) {
        auto c = CompareWeightMemory(a, **mapped, **huge, t);
        if (!c.ok()) {
          std::fprintf(stderr, "decode_bench: %s\n", c.status().message().c_str());
          rc = 1;
          continue;
        }
        std::printf("| %s | %s | %d | %.2f | %.2f | %.3fx | %.0f |\n", shape.c_str(), dtype.c_str(), t, c->first_tps, c->second_tps,
                    c->speedup, (*huge)->weight_region ? (*huge)->weight_region->HugeBytes() / 1048576.0 : -1.0);
        std::fflush(stdout);
      }
    }
  }
  if (a.compare_kv_dtypes) {
    std::printf("\n## KV cache dtype: f32 vs f16 (decode steps interleaved after a %d-token context, %d pairs)\n\n", a.context,
                2 * a.decode_steps);
    std::printf("| model | dtype | threads | f32 KV tok/s (median) | f16 KV tok/s (median) | speed-up (paired median) |\n");
    std::printf("|---|---|---:|---:|---:|---:|\n");
    if (AlternationRows(a, huge && !a.file_layout, [&](const Model& m, int t) { return CompareKvDTypes(a, m, t); }) != 0) rc = 1;
  }
  if (!a.row_prefetch.empty()) {
    const DotKernels& first = *RowPrefetchVariant(a.row_prefetch[0].first, a.row_prefetch[0].second);
    const DotKernels& second = *RowPrefetchVariant(a.row_prefetch[1].first, a.row_prefetch[1].second);
    std::printf("\n## kQ8_0Rows prefetch distance: %d/%d vs %d/%d chunks (long/short rows; decode steps interleaved after a %d-token context, %d pairs)\n\n",
                a.row_prefetch[0].first, a.row_prefetch[0].second, a.row_prefetch[1].first, a.row_prefetch[1].second, a.context,
                2 * a.decode_steps);
    std::printf("| model | dtype | threads | first tok/s (median) | second tok/s (median) | speed-up of the second (paired median) |\n");
    std::printf("|---|---|---:|---:|---:|---:|\n");
    // As kvserve serves: kQ8_0Rows in huge pages (--weights mapped keeps the file's Q8_0 blocks, which the distance does not touch).
    if (AlternationRows(a, huge, [&](const Model& m, int t) { return CompareKernelSets(a, m, t, first, second); }) != 0) rc = 1;
  }
  if (a.compare_short_rows) {
    std::printf("\n## kQ8_0Rows rows under 1,024 values: one at a time vs four at a time (decode steps interleaved after a %d-token context, %d pairs)\n\n",
                a.context, 2 * a.decode_steps);
    std::printf("| model | dtype | threads | one at a time tok/s (median) | four at a time tok/s (median) | speed-up of four at a time (paired median) |\n");
    std::printf("|---|---|---:|---:|---:|---:|\n");
    if (AlternationRows(a, huge, [&](const Model& m, int t) { return CompareKernelSets(a, m, t, *ShortRowsOneAtATime(), *Avx512DefaultDotKernels()); }) != 0) rc = 1;
  }
  if (a.compare_avx512_sets) {
    // The set this CPU runs against each of the others: a speed-up over 1 backs the choice.
    const DotKernels& mine = BestDotKernels();
    for (const DotKernels* other : {Avx512DefaultDotKernels(), Avx512Zen4SetDotKernels(), Avx512IntelSetDotKernels()}) {
      if (std::string_view(other->name) == mine.name) continue;
      std::printf("\n## The AVX-512 kernel sets: %s vs %s, the one this CPU runs (decode steps interleaved after a %d-token context, %d pairs)\n\n",
                  other->name, mine.name, a.context, 2 * a.decode_steps);
      std::printf("| model | dtype | threads | %s tok/s (median) | %s tok/s (median) | speed-up of %s (paired median) |\n", other->name, mine.name,
                  mine.name);
      std::printf("|---|---|---:|---:|---:|---:|\n");
      if (AlternationRows(a, huge, [&](const Model& m, int t) { return CompareKernelSets(a, m, t, *other, mine); }) != 0) rc = 1;
    }
  }
  std::printf("\nload average (1 min) at end: %s\n", LoadAverage().c_str());
  return rc;
}

}  // namespace
}  // namespace kvserve

int main(int argc, char** argv) { return kvserve::Main(argc, argv); }
