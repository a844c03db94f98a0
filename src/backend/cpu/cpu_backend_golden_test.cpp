// The CPU forward pass against independent references: llama.cpp's greedy tokens and
// Hugging Face float64 top-10 log-probabilities (../shared/golden), on real models,
// with KV read through shuffled (non-contiguous) block tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "model/model.h"
#include "util/paths.h"

namespace kvserve {
namespace {

using nlohmann::json;
using Precision = CpuBackendConfig::Precision;

json ReadJson(const std::string& rel) {
  std::ifstream f(SharedPath(rel));
  EXPECT_TRUE(f.good()) << "missing fixture " << rel;
  return json::parse(f);
}

std::vector<double> LogSoftmax(std::span<const float> l) {
  double mx = -INFINITY;
  for (float v : l) mx = std::max<double>(mx, v);
  double s = 0;
  for (float v : l) s += std::exp(v - mx);
  std::vector<double> out(l.size());
  const double lse = mx + std::log(s);
  for (size_t i = 0; i < l.size(); ++i) out[i] = l[i] - lse;
  return out;
}

struct StepCheck {
  std::vector<std::vector<std::pair<int, double>>> top;  // per step: (id, logprob)
};

// Greedy decode of `prompt` for n steps through one sequence with a shuffled block
// table; returns the generated ids, and checks each step's top-k log-probs.
std::vector<int32_t> GreedyDecode(Backend& backend, const Model& model, const std::vector<int32_t>& prompt, int n,
                                  const StepCheck* check, double tol, const std::string& label) {
  const int bs = backend.kv_config().block_size;
  const int V = model.config.vocab_size;
  std::vector<int32_t> table(backend.kv_config().num_blocks);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
  std::mt19937 rng(42);
  std::shuffle(table.begin(), table.end(), rng);
  std::vector<float> logits(V);
  std::vector<int32_t> out;
  std::vector<int32_t> pending = prompt;
  int context = 0;
  double worst = 0;
  for (int step = 0; step < n; ++step) {
    BatchDescriptor b;
    b.tokens = pending;
    for (size_t i = 0; i < pending.size(); ++i) b.positions.push_back(context + static_cast<int32_t>(i));
    const int total = context + static_cast<int>(pending.size());
    const int blocks = (total + bs - 1) / bs;
    b.block_tables.assign(table.begin(), table.begin() + blocks);
    b.seqs = {SequenceSlice{0, static_cast<int32_t>(pending.size()), context, 0, blocks}};
    b.logit_rows = {static_cast<int32_t>(pending.size()) - 1};
    Status st = backend.Forward(b, logits);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (!st.ok()) return out;
    int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (check && step < static_cast<int>(check->top.size())) {
      std::vector<double> lp = LogSoftmax(logits);
      for (auto [id, ref] : check->top[step]) {
        worst = std::max(worst, std::fabs(lp[id] - ref));
        EXPECT_NEAR(lp[id], ref, tol) << label << " step " << step << " token " << id;
      }
    }
    out.push_back(best);
    context = total;
    pending = {best};
  }
  std::printf("[golden] %-40s max |logprob diff| = %.2e\n", label.c_str(), worst);
  return out;
}

// The configurations checked against the references: the float32 reference path, and
// the fast path with an f32 and with an f16 KV cache (kvserve's default, as llama.cpp's).
struct PathCase {
  Precision precision;
  KvCacheDType kv;
  const char* label;
};
constexpr PathCase kPaths[] = {{Precision::kReference, KvCacheDType::kF32, " ref"},
                               {Precision::kFast, KvCacheDType::kF32, " fast"},
                               {Precision::kFast, KvCacheDType::kF16, " fast kv-f16"}};

std::unique_ptr<Backend> MakeBackend(const Model& m, Precision p, int blocks = 64, int block_size = 16,
                                     KvCacheDType kv = KvCacheDType::kF32) {
  CpuBackendConfig c;
  c.kv.dtype = kv;
  c.kv.num_blocks = blocks;
  c.kv.block_size = block_size;
  c.num_threads = 2;
  c.precision = p;
  auto b = CreateCpuBackend(m, c);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(b).value();
}

const char* kStoriesCases[] = {"once_upon_a_time", "lily_and_tom", "single_space", "bos_literal", "empty",
                               "hello", "dialogue_newline", "byte_fallback_unicode", "long_300_tokens"};

class StoriesGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(StoriesGolden, GreedyTokensAndFp64Logprobs) {
  const std::string model_path = SharedPath(GetParam());
  auto model = LoadModel(model_path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  json fp64 = ReadJson("golden/stories260K/hf_fp64.json")["cases"];
  for (const char* name : kStoriesCases) {
    json lc = ReadJson(std::string("golden/stories260K/") + name + ".json");
    std::vector<int32_t> prompt = lc["prompt_tokens"].get<std::vector<int32_t>>();
    const json& ref = fp64[name];
    ASSERT_EQ(ref["prompt_tokens"].get<std::vector<int32_t>>(), prompt) << name;
    StepCheck check;
    for (const json& step : ref["top10_logprobs"]) {
      check.top.emplace_back();
      for (const json& e : step["top"]) check.top.back().emplace_back(e[0].get<int>(), e[1].get<double>());
    }
    for (const PathCase& path : kPaths) {
      auto backend = MakeBackend(**model, path.precision, 32, 16, path.kv);
      const double tol = path.precision == Precision::kReference ? 1e-4 : 2e-2;
      std::string label = std::string(name) + path.label;
      std::vector<int32_t> got = GreedyDecode(*backend, **model, prompt, 64, &check, tol, label);
      EXPECT_EQ(got, lc["generated_tokens"].get<std::vector<int32_t>>()) << label << " vs llama.cpp";
      EXPECT_EQ(got, ref["tokens"].get<std::vector<int32_t>>()) << label << " vs HF fp64";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, StoriesGolden,
                         ::testing::Values("models/stories260K/stories260K.gguf", "models/stories260K/hf"),
                         [](const auto& info) { return info.index == 0 ? std::string("gguf") : std::string("hf_dir"); });

TEST(Prose25mGolden, GreedyTokensAndLogprobs) {
  auto model = LoadModel(SharedPath("models/prose-25m/hf"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  json golden = ReadJson("golden/prose-25m/golden.json");
  ASSERT_GE(golden["cases"].size(), 6u);
  for (const PathCase& path : kPaths) {
    auto backend = MakeBackend(**model, path.precision, 8, 16, path.kv);
    for (const json& c : golden["cases"]) {
      std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
      std::vector<int32_t> want = c["tokens"].get<std::vector<int32_t>>();
      StepCheck check;
      for (const json& step : c["top"]) {
        check.top.emplace_back();
        for (const json& e : step) check.top.back().emplace_back(e[0].get<int>(), e[1].get<double>());
      }
      std::string label = c["prompt"].get<std::string>().substr(0, 24) + path.label;
      std::vector<int32_t> got = GreedyDecode(*backend, **model, prompt, static_cast<int>(want.size()), &check, 1e-2, label);
      EXPECT_EQ(got, want) << label;
    }
  }
}

}  // namespace
}  // namespace kvserve
