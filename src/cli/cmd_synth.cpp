// `kvserve synth`: writes a random-weight GGUF model with the real shape and
// tokenizer of a well-known model, for benchmarks and tests at real sizes.
#include <chrono>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "tools/synth_model.h"

namespace kvserve::cli {
namespace {

struct SynthCliOptions {
  std::string shape;
  std::string dtype = "q8_0";
  std::string out;
  uint64_t seed = 0;
  int layers = 0;
};

Status Run(const SynthCliOptions& o) {
  SynthOptions opts;
  opts.shape = o.shape;
  KV_ASSIGN_OR_RETURN(opts.dtype, ParseSynthDType(o.dtype));
  opts.seed = o.seed;
  opts.num_layers = o.layers;
  const auto start = std::chrono::steady_clock::now();
  KV_ASSIGN_OR_RETURN(SynthResult r, WriteSynthModel(opts, o.out));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const ModelConfig& c = r.config;
  std::printf("%s\n", fmt::format("wrote {}: {} ({} layers, hidden {}, ffn {}, heads {}/{} kv, vocab {}, {}), {} tensors, {:.1f} MiB of weights in {:.1f}s",
                                  o.out, c.name, c.num_layers, c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads,
                                  c.vocab_size, o.dtype, r.num_tensors, r.tensor_bytes / (1024.0 * 1024.0), secs).c_str());
  return Status::Ok();
}

}  // namespace

void RegisterSynth(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<SynthCliOptions>();
  auto* cmd = app.add_subcommand("synth", "write a random-weight GGUF model of a real model's shape, with its real tokenizer");
  cmd->add_option("--shape", o->shape, "model shape")->required()->check(CLI::IsMember(SynthShapeNames()));
  cmd->add_option("--dtype", o->dtype, "weight precision of the matrices (norms stay f32)")
      ->check(CLI::IsMember({"f16", "bf16", "q8_0", "q4_0"}))
      ->capture_default_str();
  cmd->add_option("--out", o->out, "output .gguf file")->required();
  cmd->add_option("--seed", o->seed, "random seed (same seed, same bytes)")->capture_default_str();
  cmd->add_option("--layers", o->layers, "override the number of layers (0 = the shape's own)")->check(CLI::Range(0, 1024));
  cmd->callback([o, &exit_code] {
    Status st = Run(*o);
    if (!st.ok()) {
      std::fprintf(stderr, "kvserve synth: %s\n", st.message().c_str());
      exit_code = 1;
    }
  });
}

}  // namespace kvserve::cli
