#include "tools/synth_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>

#include "model/gguf_writer.h"
#include "model/known_shapes.h"
#include "model/quant.h"
#include "model/vocab_loader.h"
#include "tools/vocab_metadata.h"
#include "util/paths.h"

namespace kvserve {
namespace {

// What KnownShape does not carry: norm epsilon, RoPE scaling, the family's tokenizer.
struct ShapeExtras {
  const char* name;
  float rms_norm_eps;
  bool llama3_rope;          // Llama 3.1-style frequency scaling (factor 8, low 1, high 4, original 8192)
  const char* tokenizer;     // relative to the shared fixture folder
};

constexpr ShapeExtras kExtras[] = {
    {"llama3-8b", 1e-5f, true, "tokenizers/llama3/tokenizer.json"},
    {"llama2-7b", 1e-5f, false, "tokenizers/llama2-sp/tokenizer.model"},
    {"tinyllama-1.1b", 1e-5f, false, "tokenizers/llama2-sp/tokenizer.model"},
    // Qwen2.5 and Qwen3 share the byte-level BPE vocabulary (151643 tokens + specials).
    {"qwen2.5-0.5b", 1e-6f, false, "tokenizers/qwen3/tokenizer.json"},
    {"smollm2-135m", 1e-5f, false, "tokenizers/smollm2-135m/tokenizer.json"},
};

StatusOr<const ShapeExtras*> FindExtras(const std::string& shape) {
  for (const ShapeExtras& e : kExtras) {
    if (shape == e.name) return &e;
  }
  return Status::NotFound(fmt::format("unknown synth shape '{}' (known: {})", shape, fmt::join(SynthShapeNames(), ", ")));
}

// Deterministic random streams: every (seed, tensor, row) has its own generator, so
// rows can be produced in any order, chunking or thread split with the same result.
uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// Fills `out` with N(0, std) samples (Box-Muller) from the row's stream.
void NormalRow(uint64_t stream, float std_dev, float* out, int64_t n) {
  uint64_t state = stream;
  constexpr double kTwoPi = 6.283185307179586;
  constexpr double kInv53 = 1.0 / 9007199254740992.0;  // 2^-53
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(SplitMix64(state) >> 11) + 1.0) * kInv53;  // (0, 1]
    const double u2 = static_cast<double>(SplitMix64(state) >> 11) * kInv53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * std_dev;
    out[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
}

// Llama 3.1 RoPE scaling as per-frequency divisors (GGUF rope_freqs.weight): 1 for
// short wavelengths, `factor` for long ones, a smooth blend in between.
std::vector<float> Llama3RopeFactors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position / s.low_freq_factor;
  const double high_wavelen = s.original_max_position / s.high_freq_factor;
  std::vector<float> f(c.head_dim / 2);
  for (int i = 0; i < c.head_dim / 2; ++i) {
    const double freq = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / c.head_dim);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      f[i] = 1.0f;
    } else if (wavelen > low_wavelen) {
      f[i] = s.factor;
    } else {
      const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f[i] = static_cast<float>(1.0 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return f;
}

uint32_t GgufFileType(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 7;
    case DType::kBF16: return 32;
    default: return 0;
  }
}

// Adds a random N(0, std) matrix, generated and converted row by row on all cores.
Status AddRandomMatrix(GgufWriter& w, const std::string& name, DType dtype, int64_t rows, int64_t cols, uint64_t seed, float std_dev) {
  const uint64_t base = seed ^ Fnv1a(name);
  const size_t row_bytes = RowBytes(dtype, cols);
  return w.AddTensor(name, dtype, {rows, cols}, [=](int64_t first, int64_t n, uint8_t* dst) {
    auto work = [&](int64_t lo, int64_t hi) {
      std::vector<float> row(cols);
      for (int64_t r = lo; r < hi; ++r) {
        uint64_t s = base + static_cast<uint64_t>(first + r) * 0x9E3779B97F4A7C15ull;
        NormalRow(SplitMix64(s), std_dev, row.data(), cols);
        QuantizeRow(dtype, row.data(), dst + r * row_bytes, cols);
      }
    };
    const int threads = static_cast<int>(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(1, n / 64)));
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, n * t / threads, n * (t + 1) / threads);
    work(0, n / threads);
    for (auto& th : pool) th.join();
    return Status::Ok();
  });
}

Status AddConstantF32(GgufWriter& w, const std::string& name, int64_t n, float value) {
  std::vector<float> v(n, value);
  return w.AddTensorBytes(name, DType::kF32, {n}, {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)});
}

}  // namespace

std::vector<std::string> SynthShapeNames() {
  std::vector<std::string> out;
  for (const ShapeExtras& e : kExtras) out.emplace_back(e.name);
  return out;
}

StatusOr<ModelConfig> SynthModelConfig(const SynthOptions& opts) {
  KV_ASSIGN_OR_RETURN(const ShapeExtras* extras, FindExtras(opts.shape));
  KV_ASSIGN_OR_RETURN(ModelConfig c, KnownShape(opts.shape));
  if (opts.num_layers < 0 || opts.num_layers > 1024) return Status::InvalidArgument(fmt::format("--layers {} is out of range", opts.num_layers));
  if (opts.num_layers > 0) c.num_layers = opts.num_layers;
  c.rms_norm_eps = extras->rms_norm_eps;
  c.rope_style = (c.arch == Arch::kLlama || c.arch == Arch::kMistral) ? RopeStyle::kAdjacentPairs : RopeStyle::kRotateHalf;
  if (extras->llama3_rope) {
    c.rope_scaling.type = RopeScaling::Type::kLlama3;
    c.rope_scaling.factor = 8.0f;
    c.rope_scaling.low_freq_factor = 1.0f;
    c.rope_scaling.high_freq_factor = 4.0f;
    c.rope_scaling.original_max_position = 8192;
  }
  c.name = "synthetic-" + opts.shape;
  return c;
}

StatusOr<std::string> SynthTokenizerPath(const std::string& shape) {
  KV_ASSIGN_OR_RETURN(const ShapeExtras* extras, FindExtras(shape));
  return SharedPath(extras->tokenizer);
}

StatusOr<DType> ParseSynthDType(const std::string& name) {
  for (DType t : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    if (name == GetDTypeInfo(t).name) return t;
  }
  return Status::InvalidArgument("unknown dtype '" + name + "' (expected f16, bf16, q8_0 or q4_0)");
}

StatusOr<SynthResult> WriteSynthModel(const SynthOptions& opts, const std::string& out_path) {
  KV_ASSIGN_OR_RETURN(const ModelConfig c, SynthModelConfig(opts));
  if (opts.dtype != DType::kF16 && opts.dtype != DType::kBF16 && opts.dtype != DType::kQ8_0 && opts.dtype != DType::kQ4_0)
    return Status::InvalidArgument(fmt::format("synth: dtype {} is not one of f16, bf16, q8_0, q4_0", GetDTypeInfo(opts.dtype).name));
  if (!(opts.weight_std > 0.0f && opts.weight_std < 1.0f)) return Status::InvalidArgument(fmt::format("synth: weight std {} is out of (0, 1)", opts.weight_std));

  KV_ASSIGN_OR_RETURN(const std::string tok_path, SynthTokenizerPath(opts.shape));
  VocabSpec vocab;
  if (std::filesystem::path(tok_path).extension() == ".json") {
    KV_ASSIGN_OR_RETURN(vocab, LoadVocabFromTokenizerJson(tok_path));
  } else {
    KV_ASSIGN_OR_RETURN(vocab, LoadVocabFromSentencePieceModel(tok_path));
  }
  Status padded = PadVocab(vocab, c.vocab_size);
  if (!padded.ok()) return Status::Corrupt(tok_path + ": " + padded.message());

  GgufWriter w;
  const std::string arch = ArchName(c.arch);
  const std::string a = arch + ".";
  w.SetString("general.architecture", arch);
  w.SetString("general.name", c.name);
  w.SetUint32("general.file_type", GgufFileType(opts.dtype));
  if (opts.dtype == DType::kQ8_0 || opts.dtype == DType::kQ4_0) w.SetUint32("general.quantization_version", 2);
  w.SetUint32(a + "vocab_size", c.vocab_size);
  w.SetUint32(a + "context_length", c.max_context);
  w.SetUint32(a + "embedding_length", c.hidden_size);
  w.SetUint32(a + "feed_forward_length", c.intermediate_size);
  w.SetUint32(a + "block_count", c.num_layers);
  w.SetUint32(a + "attention.head_count", c.num_heads);
  w.SetUint32(a + "attention.head_count_kv", c.num_kv_heads);
  if (c.head_dim != c.hidden_size / c.num_heads) {
    w.SetUint32(a + "attention.key_length", c.head_dim);
    w.SetUint32(a + "attention.value_length", c.head_dim);
  }
  w.SetFloat32(a + "attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w.SetFloat32(a + "rope.freq_base", c.rope_theta);
  w.SetUint32(a + "rope.dimension_count", c.head_dim);
  w.SetString("kvserve.synth.shape", opts.shape);
  w.SetUint64("kvserve.synth.seed", opts.seed);
  w.SetFloat32("kvserve.synth.weight_std", opts.weight_std);
  Status vs = WriteVocabMetadata(vocab, w);
  if (!vs.ok()) return Status::Corrupt(tok_path + ": " + vs.message());

  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size, V = c.vocab_size;
  const DType d = opts.dtype;
  const uint64_t s = opts.seed;
  const float sd = opts.weight_std;
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3) {
    const std::vector<float> f = Llama3RopeFactors(c);
    KV_RETURN_IF_ERROR(w.AddTensorBytes("rope_freqs.weight", DType::kF32, {static_cast<int64_t>(f.size())},
                                        {reinterpret_cast<const uint8_t*>(f.data()), f.size() * sizeof(float)}));
  }
  KV_RETURN_IF_ERROR(AddRandomMatrix(w, "token_embd.weight", d, V, H, s, sd));
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    KV_RETURN_IF_ERROR(AddConstantF32(w, p + "attn_norm.weight", H, 1.0f));
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "attn_q.weight", d, Q, H, s, sd));
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "attn_k.weight", d, KV, H, s, sd));
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "attn_v.weight", d, KV, H, s, sd));
    if (c.qkv_bias) {
      KV_RETURN_IF_ERROR(AddConstantF32(w, p + "attn_q.bias", Q, 0.0f));
      KV_RETURN_IF_ERROR(AddConstantF32(w, p + "attn_k.bias", KV, 0.0f));
      KV_RETURN_IF_ERROR(AddConstantF32(w, p + "attn_v.bias", KV, 0.0f));
    }
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "attn_output.weight", d, H, Q, s, sd));
    KV_RETURN_IF_ERROR(AddConstantF32(w, p + "ffn_norm.weight", H, 1.0f));
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "ffn_gate.weight", d, I, H, s, sd));
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "ffn_up.weight", d, I, H, s, sd));
    KV_RETURN_IF_ERROR(AddRandomMatrix(w, p + "ffn_down.weight", d, H, I, s, sd));
  }
  KV_RETURN_IF_ERROR(AddConstantF32(w, "output_norm.weight", H, 1.0f));
  if (!c.tied_embeddings) KV_RETURN_IF_ERROR(AddRandomMatrix(w, "output.weight", d, V, H, s, sd));

  KV_RETURN_IF_ERROR(w.Write(out_path));
  SynthResult r;
  r.config = c;
  r.tensor_bytes = w.tensor_data_bytes();
  r.num_tensors = static_cast<int>(w.num_tensors());
  return r;
}

}  // namespace kvserve
