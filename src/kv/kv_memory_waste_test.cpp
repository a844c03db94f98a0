// Memory-waste figures of the paged cache (printed; the ones in docs/bench-kv.md):
// internal fragmentation under realistic request lengths, and a shared system
// prompt stored once.
#include <cstdio>
#include <numeric>

#include <gtest/gtest.h>

#include "kv/kv_cache_manager.h"
#include "kv/kv_sim.h"
#include "kv/prefix_tree.h"

namespace kvserve {
namespace {

// Llama-3-8B, f16 K/V: 32 layers x (K, V) x 16 tokens x 8 kv heads x 128 dims x 2 bytes.
constexpr size_t kLlama3BlockBytes = 32ull * 2 * 16 * 8 * 128 * 2;

TEST(KvMemoryWaste, FragmentationUnderFourPercentForRealisticLengths) {
  KvSimConfig c;
  c.workload = KvWorkload::kLengths;
  c.num_requests = 1000;
  c.seed = 1;
  c.block_size = 16;
  c.bytes_per_block = kLlama3BlockBytes;
  auto r = RunKvSim(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const KvStats& s = r->at_peak;
  // Exact accounting: every sequence's last sampled token is never computed.
  EXPECT_EQ(s.filled_slots, r->resident_tokens - r->num_sequences);
  EXPECT_EQ(s.allocated_slots, static_cast<int64_t>(s.used_blocks) * 16);
  EXPECT_EQ(r->num_sequences, 1000);
  std::printf("[memory] lengths: 1000 requests, %lld resident tokens (mean %.0f), block size 16: "
              "%d blocks, internal fragmentation %.2f%% (%lld of %lld slots unused)\n",
              static_cast<long long>(r->resident_tokens), r->resident_tokens / 1000.0, s.used_blocks,
              100.0 * s.internal_fragmentation, static_cast<long long>(s.allocated_slots - s.filled_slots),
              static_cast<long long>(s.allocated_slots));
  std::printf("[memory] lengths: paged %.2f GiB vs contiguous-to-max-length %.2f GiB (Llama-3-8B f16)\n",
              r->bytes_stored / 1073741824.0, r->bytes_contiguous_equivalent / 1073741824.0);
  EXPECT_LT(s.internal_fragmentation, 0.04);
  EXPECT_GT(s.internal_fragmentation, 0.0);
}

// 10 requests share a 2,048-token system prompt, then 100 unique tokens each, then
// 50 decode steps: the prompt's 128 blocks must exist once.
TEST(KvMemoryWaste, SharedSystemPromptStoredOnce) {
  for (bool caching : {true, false}) {
    KvManagerConfig mc;
    mc.num_blocks = 2000;
    mc.block_size = 16;
    mc.enable_prefix_caching = caching;
    mc.bytes_per_block = kLlama3BlockBytes;
    auto m = std::move(KvCacheManager::Create(mc)).value();
    std::vector<int32_t> system(2048);
    std::iota(system.begin(), system.end(), 1000);
    for (RequestId id = 1; id <= 10; ++id) {
      std::vector<int32_t> prompt = system;
      for (int i = 0; i < 100; ++i) prompt.push_back(static_cast<int32_t>(100000 * id + i));
      m->AddRequest(id, prompt);
      PrefixHit hit = m->GetComputedBlocks(id);
      EXPECT_EQ(hit.num_tokens, id == 1 ? 0 : caching ? 2048 : 0);
      int32_t n = m->NumTokens(id) - hit.num_tokens;
      ASSERT_TRUE(m->AllocateSlots(id, n, 0, &hit));
      m->CommitComputed(id, n);
    }
    for (int step = 0; step < 50; ++step) {
      for (RequestId id = 1; id <= 10; ++id) {
        m->AppendTokens(id, std::vector<int32_t>{7});
        ASSERT_TRUE(m->AllocateSlots(id, 1));
        m->CommitComputed(id, 1);
      }
    }
    m->CheckInvariants();
    KvStats s = m->Stats();
    // Each request computed 2048 + 100 + 50 tokens: 10 private blocks after the prompt.
    const int32_t expected = caching ? 128 + 10 * 10 : 10 * 138;
    EXPECT_EQ(s.used_blocks, expected);
    const double contiguous = 10.0 * (2048 + 100 + 50) * (kLlama3BlockBytes / 16);
    std::printf("[memory] shared-prefix (prefix caching %s): %d blocks = %.1f MiB stored vs %.1f MiB for 10 "
                "contiguous per-request caches (Llama-3-8B f16), hit rate %.1f%%\n",
                caching ? "on" : "off", s.used_blocks, s.used_blocks * (kLlama3BlockBytes / 1048576.0),
                contiguous / 1048576.0, 100.0 * s.prefix_hit_rate);
    if (caching) {
      PrefixTree tree = BuildPrefixTree(*m);
      ASSERT_EQ(tree.roots.size(), 1u);
      EXPECT_EQ(tree.roots[0].blocks.size(), 128u);  // the system prompt, one radix node
      EXPECT_EQ(tree.roots[0].ref_counts, std::vector<int32_t>(128, 10));
      EXPECT_EQ(tree.roots[0].children.size(), 10u);
      EXPECT_TRUE(tree.orphans.empty());
      std::string text = PrefixTreeToText(tree);
      EXPECT_NE(text.find("128 blocks (2048 tokens) ids 0-127 ref 10 [1000 1001"), std::string::npos) << text;
      nlohmann::json j = PrefixTreeToJson(tree);
      EXPECT_EQ(j["roots"][0]["num_tokens"], 2048);
      EXPECT_EQ(j["roots"][0]["children"].size(), 10u);
      EXPECT_EQ(j["num_cached_blocks"], s.cached_blocks);
    }
  }
}

TEST(KvMemoryWaste, SharedPrefixWorkloadFigures) {
  KvSimConfig c;
  c.workload = KvWorkload::kSharedPrefix;
  c.num_requests = 10;
  c.bytes_per_block = kLlama3BlockBytes;
  auto on = RunKvSim(c);
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  c.enable_prefix_caching = false;
  auto off = RunKvSim(c);
  ASSERT_TRUE(off.ok());
  std::printf("[memory] shared-prefix workload: %lld bytes stored with prefix caching, %lld without, "
              "%lld for contiguous max-length caches; hit rate %.1f%%, %lld partial-reuse copies\n",
              static_cast<long long>(on->bytes_stored), static_cast<long long>(off->bytes_stored),
              static_cast<long long>(on->bytes_contiguous_equivalent), 100.0 * on->final_stats.prefix_hit_rate,
              static_cast<long long>(on->final_stats.partial_reuse_copies));
  EXPECT_EQ(on->resident_tokens, off->resident_tokens);  // same workload either way
  EXPECT_LT(on->bytes_stored * 4, off->bytes_stored);
  EXPECT_GT(on->final_stats.prefix_hit_tokens, 9 * 2048);
  EXPECT_GE(on->final_stats.partial_reuse_copies, 1);  // the shared user header inside block 128
}

TEST(KvMemoryWaste, ParallelSamplingCopiesOnlyPartialTails) {
  KvSimConfig c;
  c.workload = KvWorkload::kLengths;
  c.num_requests = 200;
  c.parallel_samples = 4;
  auto r = RunKvSim(c);
  ASSERT_TRUE(r.ok());
  // At most one copy per forked sequence whose prompt ends mid-block (3 per request).
  EXPECT_GT(r->final_stats.cow_copies, 0);
  EXPECT_LE(r->final_stats.cow_copies, 200 * 3);
  EXPECT_EQ(r->num_sequences, 800);
}

TEST(KvMemoryWaste, MultiTurnReusesHistory) {
  KvSimConfig c;
  c.workload = KvWorkload::kMultiTurn;
  c.num_requests = 16;
  auto r = RunKvSim(c);
  ASSERT_TRUE(r.ok());
  std::printf("[memory] multi-turn: 16 conversations x 4 turns, hit rate %.1f%%\n",
              100.0 * r->final_stats.prefix_hit_rate);
  EXPECT_GT(r->final_stats.prefix_hit_rate, 0.5);
}

TEST(KvSim, RejectsBadConfig) {
  KvSimConfig c;
  c.num_requests = -3;
  auto r = RunKvSim(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--requests -3"), std::string::npos);
  EXPECT_FALSE(ParseKvWorkload("bogus").ok());
  EXPECT_EQ(ParseKvWorkload("multi-turn").value(), KvWorkload::kMultiTurn);
}

}  // namespace
}  // namespace kvserve
