// KvCacheManager throughput on 10k requests: admission (lookup + allocate + commit)
// and free, one decode step, and const prefix lookups. The "per_request" counter is
// the manager's cost per scheduled request, to set beside a model step.
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "kv/kv_cache_manager.h"
#include "util/status.h"

namespace kvserve {
namespace {

constexpr int kRequests = 10000;

std::unique_ptr<KvCacheManager> MakeManager(int32_t num_blocks, bool caching) {
  KvManagerConfig c;
  c.num_blocks = num_blocks;
  c.block_size = 16;
  c.enable_prefix_caching = caching;
  auto m = KvCacheManager::Create(c);
  KV_CHECK(m.ok());
  return std::move(m).value();
}

// kRequests prompts: `shared` common tokens, then `unique` random ones.
std::vector<std::vector<int32_t>> Prompts(int shared, int unique) {
  std::mt19937 rng(42);
  std::vector<int32_t> prefix(shared);
  for (auto& t : prefix) t = static_cast<int32_t>(rng() % 32000);
  std::vector<std::vector<int32_t>> out(kRequests, prefix);
  for (auto& p : out) {
    for (int i = 0; i < unique; ++i) p.push_back(static_cast<int32_t>(rng() % 32000));
  }
  return out;
}

void SetPerRequest(benchmark::State& state, int64_t requests_per_iteration) {
  state.SetItemsProcessed(state.iterations() * requests_per_iteration);
  state.counters["per_request"] = benchmark::Counter(static_cast<double>(state.iterations() * requests_per_iteration),
                                                     benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Admit 10k requests (AddRequest hashes the prompt, prefix lookup, allocate,
// commit the prefill), then free them all. Arg 0: prefix caching off/on;
// arg 1: tokens shared by every prompt (0 = all distinct).
void BM_AdmitAndFree(benchmark::State& state) {
  const bool caching = state.range(0) != 0;
  const int shared = static_cast<int>(state.range(1));
  auto prompts = Prompts(shared, 256);
  auto m = MakeManager(kRequests * ((shared + 256) / 16 + 2), caching);
  for (auto _ : state) {
    for (int i = 0; i < kRequests; ++i) {
      RequestId id = static_cast<RequestId>(i);
      m->AddRequest(id, prompts[i]);
      PrefixHit hit = m->GetComputedBlocks(id);
      int32_t n = m->NumTokens(id) - hit.num_tokens;
      if (!m->AllocateSlots(id, n, 0, &hit)) state.SkipWithError("out of blocks");
      m->CommitComputed(id, n);
    }
    benchmark::DoNotOptimize(m->TakePendingCopies());
    for (int i = 0; i < kRequests; ++i) m->Free(static_cast<RequestId>(i));
  }
  SetPerRequest(state, kRequests);
}
BENCHMARK(BM_AdmitAndFree)->Args({0, 0})->Args({1, 0})->Args({1, 1024})->Unit(benchmark::kMillisecond);

// One decode step for 10k running requests: append the sampled token, allocate its
// slot, commit it (hashing a block every 16 steps).
void BM_DecodeStep(benchmark::State& state) {
  const bool caching = state.range(0) != 0;
  auto prompts = Prompts(0, 200);
  const int kSteps = 400;  // fixed, so the pool never runs out
  auto m = MakeManager(kRequests * ((200 + kSteps) / 16 + 2), caching);
  for (int i = 0; i < kRequests; ++i) {
    m->AddRequest(i, prompts[i]);
    KV_CHECK(m->AllocateSlots(i, 200));
    m->CommitComputed(i, 200);
    m->AppendTokens(i, std::vector<int32_t>{1});
  }
  int32_t token = 2;
  for (auto _ : state) {
    for (int i = 0; i < kRequests; ++i) {
      if (!m->AllocateSlots(i, 1)) state.SkipWithError("out of blocks");
      m->CommitComputed(i, 1);
      m->AppendTokens(i, std::span<const int32_t>(&token, 1));
    }
    benchmark::DoNotOptimize(m->TakePendingCopies());
    ++token;
  }
  SetPerRequest(state, kRequests);
}
BENCHMARK(BM_DecodeStep)->Arg(0)->Arg(1)->Iterations(400)->Unit(benchmark::kMillisecond);

// Const longest-prefix lookups for 10k registered requests sharing a 1,024-token
// prefix that is cached (hits 64 blocks each, verifying every block's tokens).
void BM_PrefixLookup(benchmark::State& state) {
  const int shared = static_cast<int>(state.range(0));
  auto prompts = Prompts(shared, 64);
  auto m = MakeManager(kRequests * 8 + (shared + 64) / 16 + 2, true);
  // One request computes and caches the prefix; the rest only register.
  m->AddRequest(kRequests, prompts[0]);
  KV_CHECK(m->AllocateSlots(kRequests, m->NumTokens(kRequests)));
  m->CommitComputed(kRequests, m->NumTokens(kRequests));
  for (int i = 0; i < kRequests; ++i) m->AddRequest(i, prompts[i]);
  int64_t hit_tokens = 0;
  for (auto _ : state) {
    for (int i = 0; i < kRequests; ++i) hit_tokens += m->GetComputedBlocks(i).num_tokens;
  }
  benchmark::DoNotOptimize(hit_tokens);
  state.counters["hit_tokens_per_lookup"] = static_cast<double>(hit_tokens) / (state.iterations() * kRequests);
  SetPerRequest(state, kRequests);
}
BENCHMARK(BM_PrefixLookup)->Arg(0)->Arg(1024)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kvserve

BENCHMARK_MAIN();
