// kvserve generate: one prompt (streamed to stdout) or a JSONL file of prompts
// (one JSON line per prompt, in input order, then a stats line), through the engine.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
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

struct GenerateOptions {
  std::string model_path;
  std::string prompt;
  bool prompt_set = false;
  std::string prompts_file;
  int max_tokens = 64;
  double temperature = 0.0;
  uint64_t seed = 0;
  bool seed_set = false;
  bool json = false;
  EngineOptionValues engine;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "kvserve generate: %s\n", msg.c_str());
  return 1;
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One line of a prompts file -> an engine request.
StatusOr<EngineRequest> ParsePromptLine(const std::string& line, size_t line_no, const GenerateOptions& opts,
                                        const Tokenizer& tok) {
  auto where = [&](const std::string& m) { return Status::InvalidArgument(opts.prompts_file + ":" + std::to_string(line_no) + ": " + m); };
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return where("not a JSON object");
  if (!j.contains("prompt") || !j["prompt"].is_string()) return where("\"prompt\" must be a string");
  EngineRequest r;
  r.id = line_no;
  r.prompt = tok.Encode(j["prompt"].get<std::string>(), true, true);
  r.params.max_tokens = opts.max_tokens;
  r.params.temperature = static_cast<float>(opts.temperature);
  if (opts.seed_set) r.params.seed = opts.seed + line_no;
  try {
    if (j.contains("max_tokens")) r.params.max_tokens = j["max_tokens"].get<int>();
    if (j.contains("temperature")) r.params.temperature = j["temperature"].get<float>();
    if (j.contains("top_p")) r.params.top_p = j["top_p"].get<float>();
    if (j.contains("top_k")) r.params.top_k = j["top_k"].get<int>();
    if (j.contains("min_p")) r.params.min_p = j["min_p"].get<float>();
    if (j.contains("seed")) r.params.seed = j["seed"].get<uint64_t>();
    if (j.contains("n")) r.params.n = j["n"].get<int>();
    if (j.contains("priority")) r.priority = j["priority"].get<int>();
    if (j.contains("stop")) {
      if (j["stop"].is_string()) r.params.stop = {j["stop"].get<std::string>()};
      else r.params.stop = j["stop"].get<std::vector<std::string>>();
    }
  } catch (const json::exception& e) {
    return where(std::string("bad field type: ") + e.what());
  }
  return r;
}

int RunBatch(const GenerateOptions& opts, Engine& engine, const Tokenizer& tok) {
  std::ifstream in(opts.prompts_file);
  if (!in) return Fail(opts.prompts_file + ": cannot open");
  std::vector<EngineRequest> reqs;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = ParsePromptLine(line, line_no, opts, tok);
    if (!r.ok()) return Fail(r.status().message());
    reqs.push_back(std::move(r).value());
  }
  auto t0 = Clock::now();
  std::map<uint64_t, RequestOutput> done;
  for (auto& r : reqs) {
    Status st = engine.AddRequest(r);
    if (!st.ok()) return Fail(opts.prompts_file + ":" + std::to_string(r.id) + ": " + st.message());
  }
  while (engine.HasUnfinished()) {
    auto outs = engine.Step();
    if (!outs.ok()) return Fail(outs.status().ToString());
    for (auto& o : *outs)
      if (o.finished) done[o.id] = std::move(o);
  }
  double secs = Seconds(t0, Clock::now());
  int64_t gen = 0;
  for (auto& r : reqs) {
    const RequestOutput& o = done.at(r.id);
    json j = {{"prompt_tokens", r.prompt}};
    if (o.final_sequences.size() == 1) {
      j["tokens"] = o.final_sequences[0].tokens;
      j["text"] = o.final_sequences[0].text;
      j["finish_reason"] = o.final_sequences[0].finish_reason;
    } else {
      json choices = json::array();
      for (auto& f : o.final_sequences) choices.push_back({{"tokens", f.tokens}, {"text", f.text}, {"finish_reason", f.finish_reason}});
      j["choices"] = choices;
      j["tokens"] = o.final_sequences[0].tokens;
      j["text"] = o.final_sequences[0].text;
    }
    gen += o.completion_tokens;
    std::printf("%s\n", j.dump().c_str());
  }
  EngineStats s = engine.Stats();
  json stats = {{"requests", reqs.size()},
                {"preemptions", {{"recompute", s.preemptions_recompute}, {"swap", s.preemptions_swap}}},
                {"peak_kv_blocks_used", s.peak_kv_blocks_used},
                {"kv_blocks_total", s.kv.num_blocks},
                {"prefix_hit_rate", s.kv.prefix_hit_rate},
                {"prefix_hit_tokens", s.kv.prefix_hit_tokens},
                {"cow_copies", s.kv.cow_copies},
                {"steps", s.steps},
                {"generated_tokens", gen},
                {"elapsed_s", secs},
                {"output_tokens_per_s", gen / std::max(secs, 1e-9)},
                {"requests_per_s", reqs.size() / std::max(secs, 1e-9)}};
  std::printf("%s\n", json{{"stats", stats}}.dump().c_str());
  return 0;
}

int RunSingle(const GenerateOptions& opts, Engine& engine, const Tokenizer& tok) {
  EngineRequest r;
  r.id = 1;
  r.prompt = tok.Encode(opts.prompt, true, true);
  r.params.max_tokens = opts.max_tokens;
  r.params.temperature = static_cast<float>(opts.temperature);
  if (opts.seed_set) r.params.seed = opts.seed;
  auto t0 = Clock::now();
  Status st = engine.AddRequest(r);
  if (!st.ok()) return Fail(st.message());
  Clock::time_point t_first{};
  std::vector<int32_t> tokens;
  std::string text;
  while (engine.HasUnfinished()) {
    auto outs = engine.Step();
    if (!outs.ok()) return Fail(outs.status().ToString());
    for (auto& o : *outs) {
      for (auto& d : o.deltas) {
        if (tokens.empty() && !d.new_tokens.empty()) t_first = Clock::now();
        tokens.insert(tokens.end(), d.new_tokens.begin(), d.new_tokens.end());
        text += d.new_text;
        if (!opts.json) {
          std::fwrite(d.new_text.data(), 1, d.new_text.size(), stdout);
          std::fflush(stdout);
        }
      }
    }
  }
  auto t_end = Clock::now();
  double prompt_tps = tokens.empty() ? 0.0 : r.prompt.size() / std::max(Seconds(t0, t_first), 1e-9);
  double gen_tps = tokens.size() > 1 ? (tokens.size() - 1) / std::max(Seconds(t_first, t_end), 1e-9) : 0.0;
  if (opts.json) {
    json j = {{"prompt_tokens", r.prompt},
              {"tokens", tokens},
              {"text", text},
              {"timings", {{"prompt_tokens_per_s", prompt_tps}, {"gen_tokens_per_s", gen_tps}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("\n");
    std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s; generation: %zu tokens, %.1f tokens/s\n", r.prompt.size(), prompt_tps,
                 tokens.size(), gen_tps);
  }
  return 0;
}

int RunGenerate(GenerateOptions& opts) {
  if (opts.prompt_set == !opts.prompts_file.empty()) return Fail("give exactly one of --prompt and --prompts-file");
  Status st = FinishEngineOptions(opts.engine);
  if (!st.ok()) return Fail(st.message());
  auto loaded = LoadModelAndTokenizer(opts.model_path, opts.engine.weights_memory);
  if (!loaded.ok()) return Fail(loaded.status().ToString());
  const Model& model = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  auto engine = Engine::Create(model, tok, opts.engine.config);
  if (!engine.ok()) return Fail(engine.status().ToString());
  return opts.prompts_file.empty() ? RunSingle(opts, **engine, tok) : RunBatch(opts, **engine, tok);
}

}  // namespace

void RegisterGenerate(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt or a JSONL file of prompts");
  auto opts = std::make_shared<GenerateOptions>();
  cmd->add_option("--model", opts->model_path, "GGUF file or Hugging Face model directory")->required();
  cmd->add_option("--prompt", opts->prompt, "Prompt text")->each([opts](const std::string&) { opts->prompt_set = true; });
  cmd->add_option("--prompts-file", opts->prompts_file, "JSONL file: one {\"prompt\": ..., \"max_tokens\": ...} per line");
  cmd->add_option("--max-tokens", opts->max_tokens, "Maximum tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temperature", opts->temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--seed", opts->seed, "Sampling seed")->each([opts](const std::string&) { opts->seed_set = true; });
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of streaming text");
  AddEngineOptions(cmd, opts->engine);
  cmd->callback([opts, &exit_code] { exit_code = RunGenerate(*opts); });
}

}  // namespace kvserve::cli
