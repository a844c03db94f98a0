// The one internal description of a decoder-only transformer, whatever file it came from.
#pragma once

#include <cstdint>
#include <string>

namespace kvserve {

enum class Arch { kLlama, kMistral, kQwen2, kQwen3 };

// How RoPE pairs dimensions. GGUF "llama" files store Q/K rows permuted for
// adjacent pairs (x[2i], x[2i+1]); Hugging Face checkpoints and GGUF qwen2/qwen3
// use rotate-half pairs (x[i], x[i + d/2]). Loaders record which one the weights need.
enum class RopeStyle { kAdjacentPairs, kRotateHalf };

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 } type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string name;        // human-readable, e.g. from general.name or the directory
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;        // usually hidden_size / num_heads; Qwen3 sets it explicitly
  int max_context = 2048;  // trained context length
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::kRotateHalf;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;  // output projection reuses token embeddings
  bool qkv_bias = false;         // qwen2
  bool qk_norm = false;          // qwen3: RMSNorm on each head of q and k
  int sliding_window = 0;        // mistral (0 = none)

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
};

const char* ArchName(Arch a);

}  // namespace kvserve
