// `kvserve kv-sim`: capacity planning. Drives the real KvCacheManager through a
// synthetic workload (no model run) and reports blocks, fragmentation, bytes
// stored vs. contiguous per-request caches, prefix hit rate and copies.
#include <cstdio>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/commands.h"
#include "kv/kv_sim.h"
#include "kv/prefix_tree.h"
#include "model/known_shapes.h"
#include "model/model.h"

namespace kvserve::cli {
namespace {

struct KvSimOptions {
  std::string model_path;
  std::string shape;
  std::string dtype = "f16";
  int block_size = 16;
  std::string workload;
  int requests = 0;
  uint64_t seed = 1;
  int parallel_samples = 1;
  int turns = 4;
  bool no_prefix_caching = false;
  bool json = false;
  std::string dump_tree;  // "", "text" or "json"
};

std::string Bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", b / (1024.0 * 1024));
  return fmt::format("{:.1f} KiB", b / 1024.0);
}

Status Run(const KvSimOptions& o) {
  ModelConfig cfg;
  if (!o.shape.empty()) {
    KV_ASSIGN_OR_RETURN(cfg, KnownShape(o.shape));
  } else {
    KV_ASSIGN_OR_RETURN(auto model, LoadModel(o.model_path));
    cfg = model->config;
  }
  KV_ASSIGN_OR_RETURN(KvCacheDType dtype, ParseKvCacheDType(o.dtype, "--kv-cache-dtype"));
  KV_ASSIGN_OR_RETURN(KvWorkload workload, ParseKvWorkload(o.workload));
  KvSimConfig sc;
  sc.workload = workload;
  sc.num_requests = o.requests;
  sc.seed = o.seed;
  sc.block_size = o.block_size;
  if (o.block_size < 1 || o.block_size > BlockHasher::kMaxBlockSize) {
    return Status::InvalidArgument(fmt::format("--block-size {} outside [1, {}]", o.block_size, BlockHasher::kMaxBlockSize));
  }
  sc.bytes_per_block = KvBlockBytes(cfg, o.block_size, dtype);
  sc.parallel_samples = o.parallel_samples;
  sc.turns = o.turns;
  sc.enable_prefix_caching = !o.no_prefix_caching;

  nlohmann::json tree_json;
  std::string tree_text;
  std::function<void(const KvCacheManager&)> at_peak;
  if (!o.dump_tree.empty()) {
    at_peak = [&](const KvCacheManager& m) {
      PrefixTree tree = BuildPrefixTree(m);
      if (o.dump_tree == "json") {
        tree_json = PrefixTreeToJson(tree);
      } else {
        tree_text = PrefixTreeToText(tree);
      }
    };
  }
  KV_ASSIGN_OR_RETURN(KvSimResult r, RunKvSim(sc, at_peak));

  nlohmann::json j = r.ToJson();
  j["model"] = cfg.name;
  j["source"] = o.shape.empty() ? o.model_path : "shape:" + o.shape;
  j["kv_cache_dtype"] = o.dtype;
  j["num_layers"] = cfg.num_layers;
  j["num_kv_heads"] = cfg.num_kv_heads;
  j["head_dim"] = cfg.head_dim;
  if (o.json) {
    if (o.dump_tree == "json") j["prefix_tree"] = std::move(tree_json);
    if (o.dump_tree == "text") j["prefix_tree_text"] = tree_text;
    std::printf("%s\n", j.dump().c_str());
    return Status::Ok();
  }
  const KvStats& f = r.final_stats;
  std::printf("kv-sim: %s workload, %d requests (%d sequences), seed %llu\n", KvWorkloadName(workload),
              r.config.num_requests, r.num_sequences, static_cast<unsigned long long>(o.seed));
  std::printf("  model %s (%d layers, %d kv heads, head dim %d), kv dtype %s, block size %d = %s per block\n",
              cfg.name.c_str(), cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, o.dtype.c_str(), o.block_size,
              Bytes(static_cast<double>(sc.bytes_per_block)).c_str());
  std::printf("  blocks allocated (peak)      %d of %d\n", f.peak_used_blocks, r.num_blocks);
  std::printf("  internal fragmentation       %.2f%%\n", 100.0 * r.at_peak.internal_fragmentation);
  std::printf("  bytes stored                 %s\n", Bytes(static_cast<double>(r.bytes_stored)).c_str());
  std::printf("  contiguous, max length each  %s (max length %d tokens)\n",
              Bytes(static_cast<double>(r.bytes_contiguous_equivalent)).c_str(), r.max_sequence_len);
  std::printf("  contiguous, exact lengths    %s (%lld tokens resident)\n",
              Bytes(static_cast<double>(r.bytes_contiguous_exact)).c_str(), static_cast<long long>(r.resident_tokens));
  std::printf("  prefix hit rate              %.2f%% (%lld of %lld prompt tokens)\n", 100.0 * f.prefix_hit_rate,
              static_cast<long long>(f.prefix_hit_tokens), static_cast<long long>(f.prefix_query_tokens));
  std::printf("  copy-on-write copies         %lld\n", static_cast<long long>(f.cow_copies));
  std::printf("  partial-block reuse copies   %lld (%lld tokens)\n", static_cast<long long>(f.partial_reuse_copies),
              static_cast<long long>(f.partial_reuse_tokens));
  std::printf("  evictions                    %lld\n", static_cast<long long>(f.evictions));
  if (o.dump_tree == "text") std::printf("%s", tree_text.c_str());
  if (o.dump_tree == "json") std::printf("%s\n", tree_json.dump(2).c_str());
  return Status::Ok();
}

}  // namespace

void RegisterKvSim(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<KvSimOptions>();
  auto* cmd = app.add_subcommand("kv-sim", "Simulate the paged KV cache on a synthetic workload (capacity planning)");
  auto* model = cmd->add_option("--model", o->model_path, "GGUF file or Hugging Face model directory");
  auto* shape = cmd->add_option("--shape", o->shape, "Built-in model shape: " + [] {
    std::string s;
    for (const auto& n : KnownShapeNames()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }());
  model->excludes(shape);
  shape->excludes(model);
  cmd->add_option("--kv-cache-dtype", o->dtype, "K/V element type: f32, f16, bf16, fp8, int8, int4")->capture_default_str();
  cmd->add_option("--block-size", o->block_size, "Tokens per KV block")->capture_default_str();
  cmd->add_option("--workload", o->workload, "lengths, shared-prefix or multi-turn")->required();
  cmd->add_option("--requests", o->requests, "Requests (conversations for multi-turn); default 1000 / 10 / 16");
  cmd->add_option("--seed", o->seed, "Workload seed")->capture_default_str();
  cmd->add_option("--parallel-samples", o->parallel_samples, "Sequences per request, forked after prefill")->capture_default_str();
  cmd->add_option("--turns", o->turns, "Turns per conversation (multi-turn)")->capture_default_str();
  cmd->add_flag("--no-prefix-caching", o->no_prefix_caching, "Disable prefix caching");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_option("--dump-prefix-tree", o->dump_tree, "Dump the prefix cache tree at the memory peak: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->callback([o, &exit_code] {
    if (o->model_path.empty() && o->shape.empty()) {
      std::fprintf(stderr, "kvserve kv-sim: one of --model PATH or --shape NAME is required\n");
      exit_code = 2;
      return;
    }
    Status st = Run(*o);
    if (!st.ok()) {
      std::fprintf(stderr, "kvserve kv-sim: %s\n", st.ToString().c_str());
      exit_code = 1;
    }
  });
}

}  // namespace kvserve::cli
