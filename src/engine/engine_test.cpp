// Engine tests on the real stories260K model: batch invariance under random arrivals,
// tiny token budgets (chunked prefill) and a tiny KV pool (preemption in both modes),
// seeded sampling across batch compositions, n > 1 via fork, abort, no leaks.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "util/paths.h"

namespace kvserve {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value().release();
    auto t = Tokenizer::Create(model_->vocab);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = std::move(t).value().release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
  }

  static std::vector<std::string> Prompts() {
    return {"Once upon a time", "Lily and Tom went to the park. They", "Hello", "The cat sat on the mat and",
            "Tim said, \"I want to play!\"\nHis mom smiled and", "One day, a little bird", "Sam had a red ball.",
            "The sun was hot. The dog"};
  }

  std::unique_ptr<Engine> MakeEngine(EngineConfig cfg) {
    auto e = Engine::Create(*model_, *tokenizer_, cfg);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }

  EngineRequest Request(uint64_t id, const std::string& prompt, int max_tokens, float temperature = 0.0f) {
    EngineRequest r;
    r.id = id;
    r.prompt = tokenizer_->Encode(prompt, true, false);
    r.params.temperature = temperature;
    r.params.max_tokens = max_tokens;
    return r;
  }

  // Runs requests with random arrival steps until all finish; returns tokens by id.
  std::map<uint64_t, std::vector<int32_t>> RunAll(Engine& engine, std::vector<EngineRequest> reqs, std::mt19937& rng,
                                                  bool random_arrivals) {
    std::map<uint64_t, std::vector<int32_t>> result;
    std::shuffle(reqs.begin(), reqs.end(), rng);
    size_t next = 0;
    int guard = 0;
    while (next < reqs.size() || engine.HasUnfinished()) {
      while (next < reqs.size() && (!random_arrivals || rng() % 3 == 0 || !engine.HasUnfinished())) {
        EXPECT_TRUE(engine.AddRequest(reqs[next]).ok());
        ++next;
      }
      auto outs = engine.Step();
      EXPECT_TRUE(outs.ok()) << outs.status().ToString();
      engine.CheckInvariants();
      for (auto& o : *outs)
        if (o.finished) result[o.id] = o.final_sequences.at(0).tokens;
      EXPECT_LT(++guard, 100000);
      if (guard >= 100000) break;
    }
    return result;
  }

  static void ExpectAllFree(const Engine& engine) {
    engine.CheckInvariants();
    KvStats s = engine.kv().Stats();
    EXPECT_EQ(s.used_blocks, 0);
    EXPECT_EQ(s.free_blocks, s.num_blocks);
  }

  static Model* model_;
  static Tokenizer* tokenizer_;
};

Model* EngineTest::model_ = nullptr;
Tokenizer* EngineTest::tokenizer_ = nullptr;

TEST_F(EngineTest, GreedyBatchInvarianceUnderChunkingAndPreemption) {
  const int kMaxTokens = 40;
  std::vector<EngineRequest> reqs;
  auto prompts = Prompts();
  for (size_t i = 0; i < prompts.size(); ++i) reqs.push_back(Request(i + 1, prompts[i], kMaxTokens));

  // Alone, one at a time, roomy config.
  std::map<uint64_t, std::vector<int32_t>> alone;
  for (auto& r : reqs) {
    EngineConfig cfg;
    cfg.num_kv_blocks = 64;
    auto engine = MakeEngine(cfg);
    std::mt19937 rng(1);
    auto out = RunAll(*engine, {r}, rng, false);
    alone[r.id] = out.at(r.id);
    EXPECT_EQ(static_cast<int>(alone[r.id].size()), kMaxTokens);
    ExpectAllFree(*engine);
  }

  for (PreemptionMode mode : {PreemptionMode::kRecompute, PreemptionMode::kSwap, PreemptionMode::kAuto}) {
    for (int trial = 0; trial < 3; ++trial) {
      EngineConfig cfg;
      cfg.num_kv_blocks = 12;           // 8 requests x up to 4 blocks each do not fit: preemption
      cfg.block_size = 8;
      cfg.max_num_batched_tokens = 7;   // forces chunked prefill
      cfg.long_prefill_threshold = 5;
      cfg.preemption_mode = mode;
      cfg.swap_min_tokens = 16;
      cfg.enable_prefix_caching = trial != 1;
      auto engine = MakeEngine(cfg);
      std::mt19937 rng(100 + trial);
      auto together = RunAll(*engine, reqs, rng, true);
      for (auto& r : reqs) EXPECT_EQ(together.at(r.id), alone.at(r.id)) << "request " << r.id << " mode " << PreemptionModeName(mode);
      EngineStats st = engine->Stats();
      if (mode == PreemptionMode::kRecompute) EXPECT_GT(st.preemptions_recompute, 0);
      if (mode == PreemptionMode::kSwap) {
        EXPECT_GT(st.preemptions_swap, 0);
        EXPECT_GT(st.swapped_in_blocks, 0);
      }
      if (mode == PreemptionMode::kAuto) EXPECT_GT(st.preemptions_recompute + st.preemptions_swap, 0);
      ExpectAllFree(*engine);
    }
  }
}

TEST_F(EngineTest, SeededSamplingIsReproducibleAcrossBatchCompositions) {
  auto prompts = Prompts();
  std::vector<EngineRequest> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto r = Request(i + 1, prompts[i], 24, 0.9f);
    r.params.seed = 1000 + i;
    r.params.top_p = 0.95f;
    reqs.push_back(r);
  }
  std::map<uint64_t, std::vector<int32_t>> first;
  {
    EngineConfig cfg;
    cfg.num_kv_blocks = 256;
    auto engine = MakeEngine(cfg);
    std::mt19937 rng(5);
    first = RunAll(*engine, reqs, rng, false);
  }
  EngineConfig cfg;
  cfg.num_kv_blocks = 10;
  cfg.block_size = 8;
  cfg.max_num_batched_tokens = 9;
  auto engine = MakeEngine(cfg);
  std::mt19937 rng(6);
  auto second = RunAll(*engine, reqs, rng, true);
  for (auto& r : reqs) EXPECT_EQ(first.at(r.id), second.at(r.id)) << r.id;
  EXPECT_GT(engine->Stats().preemptions_recompute + engine->Stats().preemptions_swap, 0);
  ExpectAllFree(*engine);
}

TEST_F(EngineTest, ParallelSamplesShareThePromptBlocks) {
  EngineConfig cfg;
  cfg.num_kv_blocks = 64;
  cfg.block_size = 4;
  auto engine = MakeEngine(cfg);
  EngineRequest r = Request(7, "Lily and Tom went to the park. They", 16, 1.0f);  // 14 tokens: partial tail block
  r.params.n = 4;
  r.params.seed = 3;
  ASSERT_TRUE(engine->AddRequest(r).ok());
  std::vector<RequestOutput> finished;
  bool saw_sharing = false;
  while (engine->HasUnfinished()) {
    auto outs = engine->Step();
    ASSERT_TRUE(outs.ok());
    engine->CheckInvariants();
    KvStats s = engine->kv().Stats();
    // Four sequences of >= 15 tokens each would need >= 16 blocks unshared.
    if (engine->Stats().num_running == 4 && s.used_blocks < 16) saw_sharing = true;
    for (auto& o : *outs)
      if (o.finished) finished.push_back(o);
  }
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].final_sequences.size(), 4u);
  EXPECT_TRUE(saw_sharing);
  EXPECT_GT(engine->kv().Stats().cow_copies, 0);
  std::set<std::vector<int32_t>> distinct;
  for (auto& f : finished[0].final_sequences) distinct.insert(f.tokens);
  EXPECT_GT(distinct.size(), 1u);
  ExpectAllFree(*engine);
}

TEST_F(EngineTest, AbortFreesBlocksImmediately) {
  EngineConfig cfg;
  cfg.num_kv_blocks = 64;
  auto engine = MakeEngine(cfg);
  ASSERT_TRUE(engine->AddRequest(Request(1, "Once upon a time", 100)).ok());
  ASSERT_TRUE(engine->AddRequest(Request(2, "Hello", 100)).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(engine->Step().ok());
  EXPECT_GT(engine->kv().Stats().used_blocks, 0);
  EXPECT_TRUE(engine->Abort(1));
  EXPECT_TRUE(engine->Abort(2));
  EXPECT_FALSE(engine->Abort(3));
  ExpectAllFree(*engine);
  EXPECT_FALSE(engine->HasUnfinished());
}

TEST_F(EngineTest, RejectsBadRequestsWithNumbers) {
  EngineConfig cfg;
  cfg.num_kv_blocks = 8;
  auto engine = MakeEngine(cfg);
  EngineRequest r = Request(1, "Hello", 10);
  r.prompt.assign(2100, 5);
  Status st = engine->AddRequest(r);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("2100"), std::string::npos) << st.message();
  r = Request(2, "Hello", 10);
  r.params.top_p = 1.5f;
  EXPECT_EQ(engine->AddRequest(r).code(), Status::Code::kInvalidArgument);
  r = Request(3, "Hello", 10);
  r.prompt.push_back(100000);
  EXPECT_EQ(engine->AddRequest(r).code(), Status::Code::kInvalidArgument);
  r = Request(4, "Hello", 2045);
  st = engine->AddRequest(r);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);  // 4 + 2045 > the GGUF's 2048-token context
  EXPECT_NE(st.message().find("2048"), std::string::npos) << st.message();
  r = Request(5, "Hello", 200);
  st = engine->AddRequest(r);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);  // 204 tokens > 8 blocks x 16 of KV cache
  EXPECT_NE(st.message().find("128"), std::string::npos) << st.message();
  r = Request(6, "Hello", 100);
  EXPECT_TRUE(engine->AddRequest(r).ok());
}

TEST_F(EngineTest, PriorityRunsFirstAndAgingPreventsStarvation) {
  EngineConfig cfg;
  cfg.num_kv_blocks = 64;
  cfg.max_num_seqs = 1;
  cfg.priority_aging_steps = 4;
  auto engine = MakeEngine(cfg);
  EngineRequest low = Request(1, "Hello", 3);
  low.priority = 5;
  ASSERT_TRUE(engine->AddRequest(low).ok());
  // A stream of high-priority requests keeps arriving; aging must still let `low` run.
  uint64_t next_id = 10;
  std::vector<uint64_t> finish_order;
  for (int step = 0; step < 400 && (engine->HasUnfinished() || step < 10); ++step) {
    if (step < 200) {
      EngineRequest hi = Request(next_id++, "Once upon a time", 2);
      hi.priority = 0;
      ASSERT_TRUE(engine->AddRequest(hi).ok());
    }
    auto outs = engine->Step();
    ASSERT_TRUE(outs.ok());
    for (auto& o : *outs)
      if (o.finished) finish_order.push_back(o.id);
    if (std::find(finish_order.begin(), finish_order.end(), 1u) != finish_order.end()) break;
  }
  auto pos = std::find(finish_order.begin(), finish_order.end(), 1u);
  ASSERT_NE(pos, finish_order.end()) << "low-priority request starved";
  EXPECT_GT(pos - finish_order.begin(), 0) << "priority ignored: low ran first";
}

}  // namespace
}  // namespace kvserve
