// kvserve bench offline: a synthetic serving workload through the engine, with
// continuous batching and, in the same run, static batching as the baseline.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "cli/commands.h"
#include "cli/model_and_tokenizer.h"
#include "cli/engine_options.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kvserve::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// "fixed:N", "uniform:A:B", "normal:MEAN:STD", "exp:MEAN" (clamped to [1, max]).
struct LengthDist {
  enum class Kind { kFixed, kUniform, kNormal, kExp } kind = Kind::kFixed;
  double a = 0, b = 0;

  static StatusOr<LengthDist> Parse(const std::string& s, const char* option) {
    LengthDist d;
    auto bad = [&] { return Status::InvalidArgument(std::string(option) + ": expected fixed:N, uniform:A:B, normal:MEAN:STD or exp:MEAN, got '" + s + "'"); };
    auto colon = s.find(':');
    if (colon == std::string::npos) return bad();
    std::string kind = s.substr(0, colon), rest = s.substr(colon + 1);
    auto second = rest.find(':');
    try {
      d.a = std::stod(rest.substr(0, second));
      if (second != std::string::npos) d.b = std::stod(rest.substr(second + 1));
    } catch (...) {
      return bad();
    }
    bool two = second != std::string::npos;
    if (kind == "fixed" && !two) d.kind = Kind::kFixed;
    else if (kind == "uniform" && two && d.b >= d.a) d.kind = Kind::kUniform;
    else if (kind == "normal" && two) d.kind = Kind::kNormal;
    else if (kind == "exp" && !two) d.kind = Kind::kExp;
    else return bad();
    if (d.a < 1) return bad();
    return d;
  }

  int Sample(std::mt19937_64& rng, int max_len) const {
    double v = a;
    switch (kind) {
      case Kind::kFixed: v = a; break;
      case Kind::kUniform: v = std::uniform_int_distribution<int>(static_cast<int>(a), static_cast<int>(b))(rng); break;
      case Kind::kNormal: v = std::normal_distribution<double>(a, b)(rng); break;
      case Kind::kExp: v = std::exponential_distribution<double>(1.0 / a)(rng); break;
    }
    return std::clamp(static_cast<int>(std::lround(v)), 1, max_len);
  }
};

struct BenchOptions {
  std::string mode;
  std::string model_path;
  int num_prompts = 64;
  std::string input_dist = "uniform:16:128";
  std::string output_dist = "uniform:8:128";
  uint64_t seed = 1;
  int static_batch_size = 0;  // 0 = max_num_seqs
  bool skip_static = false;
  bool json = false;
  EngineOptionValues engine;
};

struct RunResult {
  double seconds = 0;
  int64_t output_tokens = 0;
  std::vector<double> ttft, itl, e2e;
  EngineStats stats;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::min<double>(v.size() - 1, std::floor(p / 100.0 * (v.size() - 1) + 0.5)));
  return v[i];
}

// static_batch == 0: continuous batching (all submitted at t=0, the engine admits as
// room frees up). static_batch > 0: submit batches of that size and wait for each to
// finish completely before the next (classic static batching).
StatusOr<RunResult> RunWorkload(Engine& engine, const std::vector<EngineRequest>& reqs, int static_batch) {
  RunResult res;
  std::map<uint64_t, Clock::time_point> submitted, last_token;
  auto t0 = Clock::now();
  size_t next = 0;
  // Offline workload: every request arrives at t0, so TTFT and end-to-end latency
  // include the time a request waits for its static batch to start.
  auto submit = [&](size_t count) -> Status {
    for (size_t i = 0; i < count && next < reqs.size(); ++i, ++next) {
      submitted[reqs[next].id] = t0;
      KV_RETURN_IF_ERROR(engine.AddRequest(reqs[next]));
    }
    return Status::Ok();
  };
  if (static_batch == 0) KV_RETURN_IF_ERROR(submit(reqs.size()));
  while (next < reqs.size() || engine.HasUnfinished()) {
    if (static_batch > 0 && !engine.HasUnfinished()) KV_RETURN_IF_ERROR(submit(static_batch));
    KV_ASSIGN_OR_RETURN(std::vector<RequestOutput> outs, engine.Step());
    auto now = Clock::now();
    for (auto& o : outs) {
      for (auto& d : o.deltas) {
        if (d.new_tokens.empty()) continue;
        auto it = last_token.find(o.id);
        if (it == last_token.end()) {
          res.ttft.push_back(std::chrono::duration<double>(now - submitted[o.id]).count());
        } else {
          double gap = std::chrono::duration<double>(now - it->second).count();
          for (size_t k = 0; k < d.new_tokens.size(); ++k) res.itl.push_back(gap / d.new_tokens.size());
        }
        last_token[o.id] = now;
        res.output_tokens += static_cast<int64_t>(d.new_tokens.size());
      }
      if (o.finished) res.e2e.push_back(std::chrono::duration<double>(now - submitted[o.id]).count());
    }
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  res.stats = engine.Stats();
  return res;
}

json Summarize(const RunResult& r, size_t n) {
  return {{"elapsed_s", r.seconds},
          {"requests_per_s", n / r.seconds},
          {"output_tokens_per_s", r.output_tokens / r.seconds},
          {"ttft_s", {{"p50", Percentile(r.ttft, 50)}, {"p90", Percentile(r.ttft, 90)}, {"p99", Percentile(r.ttft, 99)}}},
          {"itl_s", {{"p50", Percentile(r.itl, 50)}, {"p90", Percentile(r.itl, 90)}, {"p99", Percentile(r.itl, 99)}}},
          {"e2e_s", {{"p50", Percentile(r.e2e, 50)}, {"p90", Percentile(r.e2e, 90)}}},
          {"preemptions", {{"recompute", r.stats.preemptions_recompute}, {"swap", r.stats.preemptions_swap}}},
          {"peak_kv_blocks_used", r.stats.peak_kv_blocks_used},
          {"kv_blocks_total", r.stats.kv.num_blocks},
          {"steps", r.stats.steps}};
}

int Fail(const std::string& m) {
  std::fprintf(stderr, "kvserve bench: %s\n", m.c_str());
  return 1;
}

int RunBench(BenchOptions& o) {
  Status st = FinishEngineOptions(o.engine);
  if (!st.ok()) return Fail(st.message());
  auto in_d = LengthDist::Parse(o.input_dist, "--input-len-dist");
  if (!in_d.ok()) return Fail(in_d.status().message());
  auto out_d = LengthDist::Parse(o.output_dist, "--output-len-dist");
  if (!out_d.ok()) return Fail(out_d.status().message());
  auto loaded = LoadModelAndTokenizer(o.model_path, o.engine.weights_memory);
  if (!loaded.ok()) return Fail(loaded.status().ToString());
  const Model& model = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  const ModelConfig& cfg = model.config;

  // Random token prompts (BOS first); fixed output lengths via ignore_eos.
  std::mt19937_64 rng(o.seed);
  std::vector<EngineRequest> reqs;
  const int max_in = cfg.max_context / 2;
  for (int i = 0; i < o.num_prompts; ++i) {
    EngineRequest r;
    r.id = static_cast<uint64_t>(i + 1);
    int in_len = in_d->Sample(rng, max_in);
    int out_len = out_d->Sample(rng, cfg.max_context - in_len - 1);
    if (tok.bos_id() >= 0) r.prompt.push_back(tok.bos_id());
    std::uniform_int_distribution<int> tokd(3, cfg.vocab_size - 1);
    while (static_cast<int>(r.prompt.size()) < in_len) r.prompt.push_back(tokd(rng));
    r.params.temperature = 0;
    r.params.max_tokens = out_len;
    r.params.ignore_eos = true;
    reqs.push_back(std::move(r));
  }

  auto run = [&](int static_batch) -> StatusOr<RunResult> {
    KV_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(model, tok, o.engine.config));
    return RunWorkload(*engine, reqs, static_batch);
  };
  auto cont = run(0);
  if (!cont.ok()) return Fail(cont.status().ToString());
  json report = {{"model", o.model_path}, {"num_prompts", o.num_prompts}, {"input_len_dist", o.input_dist},
                 {"output_len_dist", o.output_dist}, {"threads", o.engine.config.threads},
                 {"max_num_seqs", o.engine.config.max_num_seqs}, {"continuous", Summarize(*cont, reqs.size())}};
  if (!o.skip_static) {
    int b = o.static_batch_size > 0 ? o.static_batch_size : o.engine.config.max_num_seqs;
    auto stat = run(b);
    if (!stat.ok()) return Fail(stat.status().ToString());
    report["static"] = Summarize(*stat, reqs.size());
    report["static"]["batch_size"] = b;
    report["throughput_ratio_continuous_over_static"] = (cont->output_tokens / cont->seconds) / (stat->output_tokens / stat->seconds);
  }
  if (o.json) {
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    auto line = [&](const char* name, const json& s) {
      std::printf("| %-10s | %8.2f | %10.1f | %8.3f | %8.3f | %8.4f | %8.4f | %5d/%-5d | %9d |\n", name, s["requests_per_s"].get<double>(),
                  s["output_tokens_per_s"].get<double>(), s["ttft_s"]["p50"].get<double>(), s["ttft_s"]["p99"].get<double>(),
                  s["itl_s"]["p50"].get<double>(), s["itl_s"]["p99"].get<double>(), s["preemptions"]["recompute"].get<int>(),
                  s["preemptions"]["swap"].get<int>(), s["peak_kv_blocks_used"].get<int>());
    };
    std::printf("| batching   |  req/s   | out tok/s  | TTFT p50 | TTFT p99 | ITL p50  | ITL p99  | preempt r/s | peak blocks |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    line("continuous", report["continuous"]);
    if (report.contains("static")) {
      line("static", report["static"]);
      std::printf("\ncontinuous / static output throughput: %.2fx\n", report["throughput_ratio_continuous_over_static"].get<double>());
    }
  }
  return 0;
}

}  // namespace

void RegisterBench(CLI::App& app, int& exit_code) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* cmd = bench->add_subcommand("offline", "Synthetic offline workload: continuous vs static batching");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("--model", o->model_path, "GGUF file or HF directory")->required();
  cmd->add_option("--num-prompts", o->num_prompts, "Requests in the workload")->check(CLI::Range(1, 1000000));
  cmd->add_option("--input-len-dist", o->input_dist, "fixed:N | uniform:A:B | normal:MEAN:STD | exp:MEAN")->capture_default_str();
  cmd->add_option("--output-len-dist", o->output_dist, "same forms as --input-len-dist")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Workload seed");
  cmd->add_option("--static-batch-size", o->static_batch_size, "Static baseline batch size (default: --max-num-seqs)");
  cmd->add_flag("--no-static", o->skip_static, "Skip the static-batching baseline");
  cmd->add_flag("--json", o->json, "Print a JSON report");
  AddEngineOptions(cmd, o->engine);
  cmd->callback([o, &exit_code] { exit_code = RunBench(*o); });
}

}  // namespace kvserve::cli
