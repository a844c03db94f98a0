#include "model/known_shapes.h"

#include <array>

namespace kvserve {
namespace {

struct Shape {
  const char* name;
  Arch arch;
  int layers, heads, kv_heads, head_dim, hidden, intermediate, vocab, max_context;
  float rope_theta;
  bool tied;
};

// From each model's config.json on the Hugging Face Hub.
constexpr std::array<Shape, 5> kShapes = {{
    {"llama3-8b", Arch::kLlama, 32, 32, 8, 128, 4096, 14336, 128256, 8192, 500000.0f, false},
    {"llama2-7b", Arch::kLlama, 32, 32, 32, 128, 4096, 11008, 32000, 4096, 10000.0f, false},
    {"tinyllama-1.1b", Arch::kLlama, 22, 32, 4, 64, 2048, 5632, 32000, 2048, 10000.0f, false},
    {"qwen2.5-0.5b", Arch::kQwen2, 24, 14, 2, 64, 896, 4864, 151936, 32768, 1000000.0f, true},
    {"smollm2-135m", Arch::kLlama, 30, 9, 3, 64, 576, 1536, 49152, 8192, 100000.0f, true},
}};

}  // namespace

StatusOr<ModelConfig> KnownShape(std::string_view name) {
  for (const Shape& s : kShapes) {
    if (name != s.name) continue;
    ModelConfig c;
    c.arch = s.arch;
    c.name = s.name;
    c.num_layers = s.layers;
    c.num_heads = s.heads;
    c.num_kv_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.hidden_size = s.hidden;
    c.intermediate_size = s.intermediate;
    c.vocab_size = s.vocab;
    c.max_context = s.max_context;
    c.rope_theta = s.rope_theta;
    c.tied_embeddings = s.tied;
    c.qkv_bias = s.arch == Arch::kQwen2;
    return c;
  }
  std::string known;
  for (const Shape& s : kShapes) known += std::string(known.empty() ? "" : ", ") + s.name;
  return Status::NotFound("unknown model shape '" + std::string(name) + "' (known: " + known + ")");
}

std::vector<std::string> KnownShapeNames() {
  std::vector<std::string> out;
  for (const Shape& s : kShapes) out.emplace_back(s.name);
  return out;
}

}  // namespace kvserve
