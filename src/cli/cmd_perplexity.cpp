// kvserve perplexity: llama-perplexity's method (see eval/perplexity.h).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "cli/commands.h"
#include "cli/engine_options.h"
#include "cli/model_and_tokenizer.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kvserve::cli {
namespace {

struct PerplexityCliOptions {
  std::string model_path;
  std::string file;
  int ctx = 512;
  int threads = 2;
  int max_chunks = 0;
  bool reference = false;
  std::string weights_memory = "huge-pages";
  std::string kv_cache_dtype = "auto";
};

int Run(const PerplexityCliOptions& o) {
  auto fail = [](const std::string& m) {
    std::fprintf(stderr, "kvserve perplexity: %s\n", m.c_str());
    return 1;
  };
  std::ifstream in(o.file, std::ios::binary);
  if (!in) return fail(o.file + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  auto memory = ParseWeightMemory(o.weights_memory);
  if (!memory.ok()) return fail(memory.status().message());
  auto loaded = LoadModelAndTokenizer(o.model_path, *memory);
  if (!loaded.ok()) return fail(loaded.status().ToString());
  const Model& model = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  if (o.ctx > model.config.max_context)
    return fail("--ctx " + std::to_string(o.ctx) + " exceeds the model's context of " + std::to_string(model.config.max_context));
  std::vector<int32_t> tokens = tok.Encode(ss.str(), /*add_special=*/true, /*parse_special=*/false);
  CpuBackendConfig bc;
  bc.kv.block_size = 16;
  bc.kv.num_blocks = (o.ctx + 15) / 16;
  bc.num_threads = o.threads;
  bc.precision = o.reference ? CpuBackendConfig::Precision::kReference : CpuBackendConfig::Precision::kFast;
  auto kv_dtype = ResolveKvCacheDType(o.kv_cache_dtype, o.reference);
  if (!kv_dtype.ok()) return fail(kv_dtype.status().message());
  bc.kv.dtype = *kv_dtype;
  auto backend = CreateCpuBackend(model, bc);
  if (!backend.ok()) return fail(backend.status().ToString());
  PerplexityOptions po;
  po.ctx = o.ctx;
  po.bos_id = tok.bos_id();
  po.max_chunks = o.max_chunks;
  auto t0 = std::chrono::steady_clock::now();
  auto res = ComputePerplexity(**backend, model, tokens, po);
  if (!res.ok()) return fail(res.status().ToString());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "%zu tokens, %d chunks of %d, %lld scored, %.1f s (%.0f tokens/s)\n", tokens.size(), res->chunks, o.ctx,
               static_cast<long long>(res->scored_tokens), secs, res->chunks * o.ctx / secs);
  std::printf("%.4f\n", res->ppl);
  return 0;
}

}  // namespace

void RegisterPerplexity(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file (llama-perplexity's method)");
  auto o = std::make_shared<PerplexityCliOptions>();
  cmd->add_option("--model", o->model_path, "GGUF file or HF directory")->required();
  cmd->add_option("--file", o->file, "Text file")->required();
  cmd->add_option("--ctx", o->ctx, "Chunk length in tokens")->check(CLI::Range(4, 1 << 20))->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--chunks", o->max_chunks, "Score at most this many chunks (0 = all)");
  cmd->add_flag("--reference", o->reference, "float32 reference path");
  AddKvCacheDTypeOption(cmd, o->kv_cache_dtype);
  AddWeightMemoryOption(cmd, o->weights_memory);
  cmd->callback([o, &exit_code] { exit_code = Run(*o); });
}

}  // namespace kvserve::cli
