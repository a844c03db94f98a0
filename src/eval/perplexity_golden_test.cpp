// Perplexity against llama-perplexity's recorded figures (../shared/golden).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "eval/perplexity.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace kvserve {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

double RunPerplexity(const Model& model, const std::vector<int32_t>& tokens, int ctx, int32_t bos) {
  CpuBackendConfig c;
  c.kv.block_size = 16;
  c.kv.num_blocks = (ctx + 15) / 16;
  c.num_threads = 2;
  auto backend = CreateCpuBackend(model, c);
  EXPECT_TRUE(backend.ok());
  PerplexityOptions o;
  o.ctx = ctx;
  o.bos_id = bos;
  auto t0 = std::chrono::steady_clock::now();
  auto r = ComputePerplexity(**backend, model, tokens, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[perplexity] ctx %d: %.4f over %d chunks (%lld scored tokens) in %.1f s\n", ctx, r->ppl, r->chunks,
              static_cast<long long>(r->scored_tokens), secs);
  return r->ppl;
}

TEST(PerplexityGolden, Stories260kMatchesLlamaCpp) {
  nlohmann::json j = nlohmann::json::parse(ReadFile(SharedPath("golden/stories260K/perplexity.json")));
  auto model = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(model.ok());
  auto tok = Tokenizer::Create((*model)->vocab);
  ASSERT_TRUE(tok.ok());
  std::vector<int32_t> tokens = (*tok)->Encode(ReadFile(SharedPath("golden/stories260K/perplexity_input.txt")), true, false);
  ASSERT_EQ(tokens, j["input_tokens_with_bos"].get<std::vector<int32_t>>());
  const double want = std::stod(j["final_ppl"].get<std::string>());
  EXPECT_NEAR(RunPerplexity(**model, tokens, 128, (*tok)->bos_id()), want, want * 0.01);
}

TEST(PerplexityGolden, Prose25mMatchesLlamaCppAt512And2048) {
  auto model = LoadModel(SharedPath("models/prose-25m/hf"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto tok = Tokenizer::Create((*model)->vocab);
  ASSERT_TRUE(tok.ok());
  std::vector<int32_t> tokens = (*tok)->Encode(ReadFile(SharedPath("golden/prose-25m/eval.txt")), true, false);
  // llama-perplexity figures from ../shared/golden/prose-25m/README.md (F16 KV cache there, F32 here).
  EXPECT_NEAR(RunPerplexity(**model, tokens, 512, (*tok)->bos_id()), 25.7400, 25.7400 * 0.01);
  EXPECT_NEAR(RunPerplexity(**model, tokens, 2048, (*tok)->bos_id()), 27.1630, 27.1630 * 0.01);
}

}  // namespace
}  // namespace kvserve
