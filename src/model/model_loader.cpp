// LoadModel: GGUF files and Hugging Face directories -> one Model description.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "model/gguf_reader.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors_reader.h"
#include "model/vocab_loader.h"

namespace kvserve {
namespace {

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "{";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "}";
}

// Looks up tensors by name and checks their shapes against the config.
class TensorBinder {
 public:
  using Finder = std::function<const Tensor*(const std::string&)>;
  TensorBinder(std::string file, Finder find) : file_(std::move(file)), find_(std::move(find)) {}

  // A 1-D {n} tensor may also be stored as {1, n}; shapes are compared after dropping leading 1s.
  Status Bind(const std::string& name, std::vector<int64_t> expected, Tensor* out, bool required = true) {
    const Tensor* t = find_(name);
    if (!t) {
      if (required) return Status::NotFound(fmt::format("{}: tensor '{}' is missing", file_, name));
      *out = Tensor{};
      return Status::Ok();
    }
    std::vector<int64_t> actual = t->shape;
    while (actual.size() > expected.size() && actual.front() == 1) actual.erase(actual.begin());
    if (actual != expected)
      return Status::Corrupt(fmt::format("{}: tensor '{}' has shape {}, expected {}", file_, name, ShapeString(t->shape), ShapeString(expected)));
    *out = *t;
    out->shape = expected;
    bound_++;
    return Status::Ok();
  }
  int bound() const { return bound_; }

 private:
  std::string file_;
  Finder find_;
  int bound_ = 0;
};

struct LayerNames {
  std::string attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm, ffn_norm, gate, up, down;
};

LayerNames GgufLayerNames(int i) {
  const std::string p = "blk." + std::to_string(i) + ".";
  return {p + "attn_norm.weight", p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight", p + "attn_output.weight",
          p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias", p + "attn_q_norm.weight", p + "attn_k_norm.weight",
          p + "ffn_norm.weight", p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight"};
}

LayerNames HfLayerNames(int i) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  return {p + "input_layernorm.weight", p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
          p + "self_attn.o_proj.weight", p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias",
          p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight", p + "post_attention_layernorm.weight",
          p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight"};
}

Status BindWeights(const ModelConfig& c, TensorBinder& b, bool gguf, ModelWeights& w) {
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
  KV_RETURN_IF_ERROR(b.Bind(gguf ? "token_embd.weight" : "model.embed_tokens.weight", {V, H}, &w.tok_embeddings));
  KV_RETURN_IF_ERROR(b.Bind(gguf ? "output_norm.weight" : "model.norm.weight", {H}, &w.output_norm));
  KV_RETURN_IF_ERROR(b.Bind(gguf ? "output.weight" : "lm_head.weight", {V, H}, &w.output, /*required=*/false));
  if (!w.output.present()) w.output = w.tok_embeddings;  // tied (or the file omits the copy)
  w.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerNames n = gguf ? GgufLayerNames(i) : HfLayerNames(i);
    LayerWeights& l = w.layers[i];
    KV_RETURN_IF_ERROR(b.Bind(n.attn_norm, {H}, &l.attn_norm));
    KV_RETURN_IF_ERROR(b.Bind(n.wq, {Q, H}, &l.wq));
    KV_RETURN_IF_ERROR(b.Bind(n.wk, {KV, H}, &l.wk));
    KV_RETURN_IF_ERROR(b.Bind(n.wv, {KV, H}, &l.wv));
    KV_RETURN_IF_ERROR(b.Bind(n.wo, {H, Q}, &l.wo));
    KV_RETURN_IF_ERROR(b.Bind(n.bq, {Q}, &l.bq, c.qkv_bias));
    KV_RETURN_IF_ERROR(b.Bind(n.bk, {KV}, &l.bk, c.qkv_bias));
    KV_RETURN_IF_ERROR(b.Bind(n.bv, {KV}, &l.bv, c.qkv_bias));
    KV_RETURN_IF_ERROR(b.Bind(n.q_norm, {D}, &l.q_norm, c.qk_norm));
    KV_RETURN_IF_ERROR(b.Bind(n.k_norm, {D}, &l.k_norm, c.qk_norm));
    KV_RETURN_IF_ERROR(b.Bind(n.ffn_norm, {H}, &l.ffn_norm));
    KV_RETURN_IF_ERROR(b.Bind(n.gate, {I, H}, &l.w_gate));
    KV_RETURN_IF_ERROR(b.Bind(n.up, {I, H}, &l.w_up));
    KV_RETURN_IF_ERROR(b.Bind(n.down, {H, I}, &l.w_down));
  }
  return Status::Ok();
}

// Norm weights and biases are read as float by every backend path; convert them once.
Status NormalizeSmallTensors(Model& m) {
  auto to_f32 = [&](Tensor& t) -> Status {
    if (!t.present() || t.dtype == DType::kF32) return Status::Ok();
    if (t.dtype != DType::kF16 && t.dtype != DType::kBF16)
      return Status::Unsupported(fmt::format("{}: tensor '{}': norm/bias tensors must be F32, F16 or BF16", m.path, t.name));
    const int64_t n = t.numel();
    std::vector<uint8_t> buf(n * sizeof(float));
    float* dst = reinterpret_cast<float*>(buf.data());
    const uint16_t* src = static_cast<const uint16_t*>(t.data);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      if (t.dtype == DType::kBF16) {
        u = static_cast<uint32_t>(src[i]) << 16;
      } else {
        float f = Fp16ToFloat(src[i]);
        std::memcpy(&u, &f, 4);
      }
      std::memcpy(&dst[i], &u, 4);
    }
    t.dtype = DType::kF32;
    t.nbytes = buf.size();
    m.owned_buffers.push_back(std::move(buf));
    t.data = m.owned_buffers.back().data();
    return Status::Ok();
  };
  KV_RETURN_IF_ERROR(to_f32(m.weights.output_norm));
  for (LayerWeights& l : m.weights.layers) {
    for (Tensor* t : {&l.attn_norm, &l.ffn_norm, &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm}) KV_RETURN_IF_ERROR(to_f32(*t));
  }
  return Status::Ok();
}

// Backends read F32/F16/BF16 weights through typed pointers; a safetensors header of
// odd length leaves the data misaligned, so such tensors are copied into aligned storage.
void AlignTensors(Model& m) {
  std::vector<Tensor*> all = m.weights.All();
  std::map<const void*, const void*> moved;  // tied tensors share one copy
  for (Tensor* t : all) {
    if (!t->present() || reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) continue;
    auto it = moved.find(t->data);
    if (it == moved.end()) {
      const uint8_t* src = static_cast<const uint8_t*>(t->data);
      m.owned_buffers.emplace_back(src, src + t->nbytes);  // heap storage is suitably aligned
      it = moved.emplace(t->data, m.owned_buffers.back().data()).first;
    }
    t->data = it->second;
  }
}

void ComputeRopeFrequencies(Model& m, const Tensor* rope_freqs) {
  const ModelConfig& c = m.config;
  const int half = c.head_dim / 2;
  m.rope_inv_freq.resize(half);
  for (int i = 0; i < half; ++i) {
    double inv = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / c.head_dim);
    const RopeScaling& s = c.rope_scaling;
    if (rope_freqs == nullptr && s.type == RopeScaling::Type::kLinear) inv /= s.factor;
    if (rope_freqs == nullptr && s.type == RopeScaling::Type::kLlama3) {
      const double low_wavelen = s.original_max_position / s.low_freq_factor;
      const double high_wavelen = s.original_max_position / s.high_freq_factor;
      const double wavelen = 2 * M_PI / inv;
      if (wavelen > low_wavelen) {
        inv /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv = (1 - smooth) * inv / s.factor + smooth * inv;
      }
    }
    if (rope_freqs != nullptr) inv /= static_cast<const float*>(rope_freqs->data)[i];
    m.rope_inv_freq[i] = static_cast<float>(inv);
  }
}

StatusOr<std::unique_ptr<Model>> LoadGguf(const std::string& path) {
  KV_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> g, GgufFile::Open(path));
  auto m = std::make_unique<Model>();
  m->path = path;
  ModelConfig& c = m->config;
  KV_ASSIGN_OR_RETURN(std::string arch, g->GetString("general.architecture"));
  if (arch == "llama") c.arch = Arch::kLlama;
  else if (arch == "mistral") c.arch = Arch::kMistral;
  else if (arch == "qwen2") c.arch = Arch::kQwen2;
  else if (arch == "qwen3") c.arch = Arch::kQwen3;
  else return Status::Unsupported(path + ": architecture '" + arch + "' is not supported (llama, mistral, qwen2, qwen3)");
  const std::string p = arch + ".";
  auto get = [&](const std::string& key, int64_t def, bool required) -> StatusOr<int> {
    if (!g->Has(p + key)) {
      if (required) return Status::NotFound(path + ": metadata '" + p + key + "' is missing");
      return static_cast<int>(def);
    }
    KV_ASSIGN_OR_RETURN(int64_t v, g->GetInt(p + key));
    if (v <= 0 || v > (int64_t{1} << 30)) return Status::Corrupt(fmt::format("{}: metadata '{}{}' = {} is out of range", path, p, key, v));
    return static_cast<int>(v);
  };
  KV_ASSIGN_OR_RETURN(c.hidden_size, get("embedding_length", 0, true));
  KV_ASSIGN_OR_RETURN(c.num_layers, get("block_count", 0, true));
  KV_ASSIGN_OR_RETURN(c.intermediate_size, get("feed_forward_length", 0, true));
  KV_ASSIGN_OR_RETURN(c.num_heads, get("attention.head_count", 0, true));
  KV_ASSIGN_OR_RETURN(c.num_kv_heads, get("attention.head_count_kv", c.num_heads, false));
  KV_ASSIGN_OR_RETURN(c.max_context, get("context_length", 2048, false));
  KV_ASSIGN_OR_RETURN(c.head_dim, get("attention.key_length", c.hidden_size / c.num_heads, false));
  if (c.num_heads % c.num_kv_heads != 0 || c.head_dim <= 0 || c.head_dim % 2 != 0 ||
      int64_t{c.num_heads} * c.head_dim > (int64_t{1} << 30))
    return Status::Corrupt(fmt::format("{}: {} heads, {} kv heads, head dim {}: inconsistent", path, c.num_heads, c.num_kv_heads, c.head_dim));
  // Partial rotary embeddings and distinct K/V head sizes are outside the supported families.
  KV_ASSIGN_OR_RETURN(int rope_dims, get("rope.dimension_count", c.head_dim, false));
  KV_ASSIGN_OR_RETURN(int value_dim, get("attention.value_length", c.head_dim, false));
  if (rope_dims != c.head_dim || value_dim != c.head_dim)
    return Status::Unsupported(fmt::format("{}: rope.dimension_count {} / attention.value_length {} differ from the head dim {}", path,
                                           rope_dims, value_dim, c.head_dim));
  KV_ASSIGN_OR_RETURN(double eps, g->GetFloatOr(p + "attention.layer_norm_rms_epsilon", 1e-5));
  KV_ASSIGN_OR_RETURN(double theta, g->GetFloatOr(p + "rope.freq_base", 10000.0));
  if (!(eps > 0) || !(theta > 0) || !std::isfinite(theta))
    return Status::Corrupt(fmt::format("{}: rms epsilon {} and rope base {} must be positive", path, eps, theta));
  c.rms_norm_eps = static_cast<float>(eps);
  c.rope_theta = static_cast<float>(theta);
  KV_ASSIGN_OR_RETURN(std::string scaling, g->GetStringOr(p + "rope.scaling.type", "none"));
  if (scaling == "linear") {
    c.rope_scaling.type = RopeScaling::Type::kLinear;
    KV_ASSIGN_OR_RETURN(double f, g->GetFloatOr(p + "rope.scaling.factor", 1.0));
    if (!(f > 0)) return Status::Corrupt(fmt::format("{}: {}rope.scaling.factor {} must be positive", path, p, f));
    c.rope_scaling.factor = static_cast<float>(f);
  } else if (scaling != "none") {
    return Status::Unsupported(path + ": rope scaling '" + scaling + "' is not supported");
  }
  KV_ASSIGN_OR_RETURN(int64_t window, g->GetIntOr(p + "attention.sliding_window", 0));
  if (window < 0 || window > (int64_t{1} << 30))
    return Status::Corrupt(fmt::format("{}: metadata '{}attention.sliding_window' = {} is out of range", path, p, window));
  c.sliding_window = static_cast<int>(window);
  c.rope_style = (c.arch == Arch::kLlama || c.arch == Arch::kMistral) ? RopeStyle::kAdjacentPairs : RopeStyle::kRotateHalf;
  c.qkv_bias = c.arch == Arch::kQwen2;
  c.qk_norm = c.arch == Arch::kQwen3;
  KV_ASSIGN_OR_RETURN(c.name, g->GetStringOr("general.name", std::filesystem::path(path).stem().string()));
  const Tensor* emb = g->FindTensor("token_embd.weight");
  if (!emb) return Status::NotFound(path + ": tensor 'token_embd.weight' is missing");
  if (emb->shape.size() != 2 || emb->shape[0] > (int64_t{1} << 30))
    return Status::Corrupt(fmt::format("{}: tensor 'token_embd.weight' has shape {}, expected {{vocab, {}}}", path, ShapeString(emb->shape), c.hidden_size));
  c.vocab_size = static_cast<int>(emb->shape[0]);
  c.tied_embeddings = g->FindTensor("output.weight") == nullptr;

  TensorBinder binder(path, [&](const std::string& n) { return g->FindTensor(n); });
  KV_RETURN_IF_ERROR(BindWeights(c, binder, /*gguf=*/true, m->weights));
  const Tensor* rope_freqs = g->FindTensor("rope_freqs.weight");
  if (rope_freqs && (rope_freqs->dtype != DType::kF32 || rope_freqs->numel() != c.head_dim / 2))
    return Status::Corrupt(path + ": tensor 'rope_freqs.weight' must be F32 with head_dim/2 entries");
  if (rope_freqs) {
    const float* f = static_cast<const float*>(rope_freqs->data);
    for (int64_t i = 0; i < rope_freqs->numel(); ++i)
      if (!(f[i] > 0) || !std::isfinite(f[i]))
        return Status::Corrupt(fmt::format("{}: tensor 'rope_freqs.weight' entry {} = {} must be a positive factor", path, i, f[i]));
  }
  ComputeRopeFrequencies(*m, rope_freqs);
  KV_ASSIGN_OR_RETURN(m->vocab, LoadVocabFromGguf(*g));
  if (!m->vocab.tokens.empty() && static_cast<int>(m->vocab.tokens.size()) > c.vocab_size)
    return Status::Corrupt(fmt::format("{}: the vocabulary has {} tokens but token_embd has {} rows", path, m->vocab.tokens.size(), c.vocab_size));
  m->file_owners.push_back(std::shared_ptr<GgufFile>(std::move(g)));
  KV_RETURN_IF_ERROR(NormalizeSmallTensors(*m));
  return m;
}

StatusOr<std::unique_ptr<Model>> LoadHfDir(const std::string& dir) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<Model>();
  m->path = dir;
  KV_ASSIGN_OR_RETURN(m->config, LoadHfConfig((fs::path(dir) / "config.json").string()));
  ModelConfig& c = m->config;
  c.name = fs::path(dir).filename().string();
  if (c.name == "hf" || c.name.empty()) c.name = fs::path(dir).parent_path().filename().string();
  KV_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsSet> st, SafetensorsSet::OpenDir(dir));
  // No lm_head means tied whatever the config says (as llama.cpp does for a missing output).
  if (!st->FindTensor("lm_head.weight")) c.tied_embeddings = true;
  TensorBinder binder(dir, [&](const std::string& n) { return st->FindTensor(n); });
  KV_RETURN_IF_ERROR(BindWeights(c, binder, /*gguf=*/false, m->weights));
  // transformers ties by config: a stored lm_head is then ignored in favour of embed_tokens.
  if (c.tied_embeddings) m->weights.output = m->weights.tok_embeddings;
  ComputeRopeFrequencies(*m, nullptr);
  KV_ASSIGN_OR_RETURN(m->vocab, LoadVocabFromHfDir(dir));
  if (static_cast<int>(m->vocab.tokens.size()) > c.vocab_size)
    return Status::Corrupt(fmt::format("{}: the tokenizer has {} tokens but the model's vocab_size is {}", dir, m->vocab.tokens.size(), c.vocab_size));
  m->file_owners.push_back(std::shared_ptr<SafetensorsSet>(std::move(st)));
  AlignTensors(*m);
  KV_RETURN_IF_ERROR(NormalizeSmallTensors(*m));
  return m;
}

}  // namespace

std::vector<Tensor*> ModelWeights::All() {
  std::vector<Tensor*> all = {&tok_embeddings, &output_norm, &output};
  for (LayerWeights& l : layers)
    for (Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down})
      all.push_back(t);
  return all;
}

StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound(path + ": no such file or directory");
  if (fs::is_directory(path, ec)) return LoadHfDir(path);
  return LoadGguf(path);
}

}  // namespace kvserve
