// LoadModel on the real fixtures (GGUF, HF F32, HF BF16 transformers-5), RoPE frequencies
// with every scaling kind, and damaged/mismatched inputs giving one clear error each.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "model/gguf_reader.h"
#include "model/gguf_writer.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors_reader.h"
#include "util/paths.h"

namespace kvserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Gguf() { return SharedPath("models/stories260K/stories260K.gguf"); }
std::string StoriesHf() { return SharedPath("models/stories260K/hf"); }
std::string ProseHf() { return SharedPath("models/prose-25m/hf"); }

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void ExpectStoriesShape(const ModelConfig& c) {
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
}

void ExpectPlainRope(const Model& m) {
  const int d = m.config.head_dim;
  ASSERT_EQ(m.rope_inv_freq.size(), static_cast<size_t>(d / 2));
  for (int i = 0; i < d / 2; ++i)
    EXPECT_FLOAT_EQ(m.rope_inv_freq[i], static_cast<float>(std::pow(m.config.rope_theta, -2.0 * i / d))) << i;
}

void ExpectRowShapes(const Model& m) {
  const ModelConfig& c = m.config;
  const ModelWeights& w = m.weights;
  EXPECT_EQ(w.tok_embeddings.shape, (std::vector<int64_t>{c.vocab_size, c.hidden_size}));
  EXPECT_EQ(w.output.shape, (std::vector<int64_t>{c.vocab_size, c.hidden_size}));
  EXPECT_EQ(w.output_norm.shape, (std::vector<int64_t>{c.hidden_size}));
  ASSERT_EQ(w.layers.size(), static_cast<size_t>(c.num_layers));
  for (const LayerWeights& l : w.layers) {
    EXPECT_EQ(l.wq.shape, (std::vector<int64_t>{c.q_dim(), c.hidden_size}));
    EXPECT_EQ(l.wk.shape, (std::vector<int64_t>{c.kv_dim(), c.hidden_size}));
    EXPECT_EQ(l.wv.shape, (std::vector<int64_t>{c.kv_dim(), c.hidden_size}));
    EXPECT_EQ(l.wo.shape, (std::vector<int64_t>{c.hidden_size, c.q_dim()}));
    EXPECT_EQ(l.w_gate.shape, (std::vector<int64_t>{c.intermediate_size, c.hidden_size}));
    EXPECT_EQ(l.w_up.shape, (std::vector<int64_t>{c.intermediate_size, c.hidden_size}));
    EXPECT_EQ(l.w_down.shape, (std::vector<int64_t>{c.hidden_size, c.intermediate_size}));
    EXPECT_EQ(l.attn_norm.dtype, DType::kF32);  // norms are always float32 after loading
    EXPECT_EQ(l.ffn_norm.dtype, DType::kF32);
    EXPECT_FALSE(l.bq.present());
    EXPECT_FALSE(l.q_norm.present());
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      EXPECT_TRUE(t->present()) << t->name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 4, 0u) << t->name;
    }
  }
}

TEST(LoadModel, Stories260KGguf) {
  auto m = LoadModel(Gguf());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Model& model = **m;
  ExpectStoriesShape(model.config);
  EXPECT_EQ(model.config.max_context, 2048);
  EXPECT_EQ(model.config.rope_style, RopeStyle::kAdjacentPairs);
  EXPECT_FALSE(model.config.tied_embeddings);  // the file has output.weight
  EXPECT_EQ(model.config.name, "llama");
  ExpectRowShapes(model);
  ExpectPlainRope(model);
  EXPECT_EQ(model.weights.tok_embeddings.dtype, DType::kF32);
  EXPECT_NE(model.weights.output.data, model.weights.tok_embeddings.data);
  // Views point at the file's bytes (data section starts at 14176; ffn_down at +355840).
  const std::vector<uint8_t> raw = ReadAll(Gguf());
  const Tensor& down = model.weights.layers[0].w_down;
  ASSERT_EQ(down.nbytes, 64u * 172 * 4);
  EXPECT_EQ(std::memcmp(down.data, raw.data() + 14176 + 355840, down.nbytes), 0);
  ASSERT_EQ(model.vocab.tokens.size(), 512u);
  EXPECT_EQ(model.vocab.bos_id, 1);
  EXPECT_EQ(model.vocab.eos_id, 2);
}

TEST(LoadModel, Stories260KHfDir) {
  auto m = LoadModel(StoriesHf());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Model& model = **m;
  ExpectStoriesShape(model.config);
  EXPECT_EQ(model.config.max_context, 512);
  EXPECT_EQ(model.config.rope_style, RopeStyle::kRotateHalf);
  EXPECT_TRUE(model.config.tied_embeddings);
  EXPECT_EQ(model.config.name, "stories260K");
  EXPECT_EQ(model.weights.output.data, model.weights.tok_embeddings.data);  // tied by config
  ExpectRowShapes(model);
  ExpectPlainRope(model);
  EXPECT_EQ(model.vocab.tokens.size(), 512u);
}

// The same checkpoint in both formats: identical tensors except Q/K, whose rows GGUF
// stores permuted so RoPE can rotate adjacent pairs.
TEST(LoadModel, GgufAndHfAgreeUpToTheRopePermutation) {
  auto g = LoadModel(Gguf());
  auto h = LoadModel(StoriesHf());
  ASSERT_TRUE(g.ok() && h.ok());
  const ModelWeights& gw = (*g)->weights;
  const ModelWeights& hw = (*h)->weights;
  auto same = [](const Tensor& a, const Tensor& b) {
    return a.nbytes == b.nbytes && a.dtype == b.dtype && std::memcmp(a.data, b.data, a.nbytes) == 0;
  };
  EXPECT_TRUE(same(gw.tok_embeddings, hw.tok_embeddings));
  EXPECT_TRUE(same(gw.output_norm, hw.output_norm));
  const int hd = 8, in = 64;
  for (int i = 0; i < 5; ++i) {
    const LayerWeights& a = gw.layers[i];
    const LayerWeights& b = hw.layers[i];
    for (auto [x, y] : {std::pair{&a.wv, &b.wv}, {&a.wo, &b.wo}, {&a.w_gate, &b.w_gate}, {&a.w_up, &b.w_up}, {&a.w_down, &b.w_down},
                        {&a.attn_norm, &b.attn_norm}, {&a.ffn_norm, &b.ffn_norm}})
      EXPECT_TRUE(same(*x, *y)) << "layer " << i << " " << x->name;
    for (auto [x, y] : {std::pair{&a.wq, &b.wq}, {&a.wk, &b.wk}}) {
      const float* gq = static_cast<const float*>(x->data);
      const float* hq = static_cast<const float*>(y->data);
      EXPECT_FALSE(same(*x, *y)) << x->name;
      for (int64_t r = 0; r < x->rows(); ++r) {
        // GGUF row (head, pair i, member j) = HF row (head, half j, i).
        const int64_t head = r / hd, pair = (r % hd) / 2, member = r % 2;
        const int64_t hf_row = head * hd + member * (hd / 2) + pair;
        ASSERT_EQ(std::memcmp(gq + r * in, hq + hf_row * in, in * 4), 0) << x->name << " row " << r;
      }
    }
  }
}

TEST(LoadModel, Prose25mBf16Transformers5) {
  auto m = LoadModel(ProseHf());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Model& model = **m;
  const ModelConfig& c = model.config;
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.intermediate_size, 1024);
  EXPECT_EQ(c.num_layers, 8);
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_context, 2048);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.rope_style, RopeStyle::kRotateHalf);
  EXPECT_EQ(c.name, "prose-25m");
  ExpectRowShapes(model);
  ExpectPlainRope(model);
  EXPECT_EQ(model.weights.tok_embeddings.dtype, DType::kBF16);
  EXPECT_EQ(model.weights.layers[3].w_down.dtype, DType::kBF16);
  EXPECT_EQ(model.weights.output.data, model.weights.tok_embeddings.data);
  // Norms were widened from BF16 exactly.
  auto st = SafetensorsFile::Open(ProseHf() + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  const Tensor* raw = (*st)->FindTensor("model.layers.2.post_attention_layernorm.weight");
  ASSERT_NE(raw, nullptr);
  const float* norm = static_cast<const float*>(model.weights.layers[2].ffn_norm.data);
  for (int i = 0; i < 384; ++i) ASSERT_EQ(norm[i], Bf16ToFloat(static_cast<const uint16_t*>(raw->data)[i])) << i;
  EXPECT_EQ(model.vocab.tokens.size(), 32000u);
}

TEST(LoadModel, MissingPath) {
  auto m = LoadModel("/nonexistent/model.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(m.status().message(), HasSubstr("/nonexistent/model.gguf"));
}

class LoadModelEdits : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvserve_model_loader_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // stories260K.gguf rewritten: metadata keys renamed (empty name drops it) or edited,
  // tensors dropped or added.
  std::string RewriteGguf(const std::function<std::string(const std::string&)>& rename,
                          const std::function<void(GgufWriter&)>& edit, const std::set<std::string>& drop = {}) {
    auto orig = GgufFile::Open(Gguf());
    EXPECT_TRUE(orig.ok());
    GgufWriter w;
    for (const auto& [key, value] : (*orig)->metadata()) {
      const std::string k = rename ? rename(key) : key;
      if (!k.empty()) w.Set(k, value);
    }
    for (const Tensor& t : (*orig)->tensors())
      if (!drop.count(t.name)) EXPECT_TRUE(w.AddTensorBytes(t.name, t.dtype, t.shape, {static_cast<const uint8_t*>(t.data), t.nbytes}).ok());
    if (edit) edit(w);
    const std::string path = (dir_ / ("edit" + std::to_string(n_++) + ".gguf")).string();
    Status s = w.Write(path);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return path;
  }

  // An HF dir with the stories260K weights and tokenizer and an edited config.json.
  std::string HfDir(const std::function<void(nlohmann::json&)>& edit, const std::vector<uint8_t>* safetensors = nullptr) {
    const fs::path d = dir_ / ("hf" + std::to_string(n_++));
    fs::create_directories(d);
    fs::create_symlink(StoriesHf() + "/tokenizer.model", d / "tokenizer.model");
    if (safetensors) {
      std::ofstream(d / "model.safetensors", std::ios::binary).write(reinterpret_cast<const char*>(safetensors->data()), safetensors->size());
    } else {
      fs::create_symlink(StoriesHf() + "/model.safetensors", d / "model.safetensors");
    }
    std::ifstream in(StoriesHf() + "/config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    if (edit) edit(j);
    std::ofstream(d / "config.json") << j.dump();
    return d.string();
  }

  Status LoadError(const std::string& path) {
    auto m = LoadModel(path);
    EXPECT_FALSE(m.ok()) << path << " loaded";
    if (m.ok()) return Status::Ok();
    EXPECT_THAT(m.status().message(), HasSubstr(path));
    return m.status();
  }

  fs::path dir_;
  int n_ = 0;
};

TEST_F(LoadModelEdits, GgufRopeScaling) {
  auto linear = LoadModel(RewriteGguf(nullptr, [](GgufWriter& w) {
    w.SetString("llama.rope.scaling.type", "linear");
    w.SetFloat32("llama.rope.scaling.factor", 4.0f);
  }));
  ASSERT_TRUE(linear.ok()) << linear.status().ToString();
  EXPECT_EQ((*linear)->config.rope_scaling.type, RopeScaling::Type::kLinear);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ((*linear)->rope_inv_freq[i], std::pow(10000.0f, -i / 4.0f) / 4);

  const std::vector<float> factors = {1, 2, 4, 8};
  auto freqs = LoadModel(RewriteGguf(nullptr, [&](GgufWriter& w) {
    ASSERT_TRUE(w.AddTensorBytes("rope_freqs.weight", DType::kF32, {4}, {reinterpret_cast<const uint8_t*>(factors.data()), 16}).ok());
  }));
  ASSERT_TRUE(freqs.ok()) << freqs.status().ToString();
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ((*freqs)->rope_inv_freq[i], std::pow(10000.0f, -i / 4.0f) / factors[i]);

  const std::vector<float> zero = {1, 0, 1, 1};
  const std::string bad = RewriteGguf(nullptr, [&](GgufWriter& w) {
    ASSERT_TRUE(w.AddTensorBytes("rope_freqs.weight", DType::kF32, {4}, {reinterpret_cast<const uint8_t*>(zero.data()), 16}).ok());
  });
  EXPECT_THAT(LoadError(bad).message(), HasSubstr("'rope_freqs.weight' entry 1"));
  const std::vector<float> five = {1, 1, 1, 1, 1};
  const std::string wrong_len = RewriteGguf(nullptr, [&](GgufWriter& w) {
    ASSERT_TRUE(w.AddTensorBytes("rope_freqs.weight", DType::kF32, {5}, {reinterpret_cast<const uint8_t*>(five.data()), 20}).ok());
  });
  EXPECT_THAT(LoadError(wrong_len).message(), HasSubstr("head_dim/2 entries"));
  const std::string yarn = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetString("llama.rope.scaling.type", "yarn"); });
  EXPECT_THAT(LoadError(yarn).message(), HasSubstr("rope scaling 'yarn' is not supported"));
}

TEST_F(LoadModelEdits, HfLlama3RopeScaling) {
  const std::string dir = HfDir([](nlohmann::json& j) {
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 2048}};
  });
  auto m = LoadModel(dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const std::vector<float>& f = (*m)->rope_inv_freq;
  ASSERT_EQ(f.size(), 4u);
  // Base frequencies 1, 0.1, 0.01, 0.001 have wavelengths 2*pi*{1, 10, 100, 1000}; with
  // original context 2048 the cut-offs are 2048/4 = 512 (high) and 2048/1 (low).
  EXPECT_FLOAT_EQ(f[0], 1.0f);   // short wavelength: unchanged
  EXPECT_FLOAT_EQ(f[1], 0.1f);
  const double smooth = (2048 / (2 * M_PI * 100) - 1.0) / (4.0 - 1.0);  // 628 lies between 512 and 2048
  EXPECT_FLOAT_EQ(f[2], static_cast<float>((1 - smooth) * 0.01 / 8 + smooth * 0.01));
  EXPECT_FLOAT_EQ(f[3], 0.001f / 8);  // long wavelength: divided by the factor
}

TEST_F(LoadModelEdits, GgufQwen2NeedsBiasesAndRotatesHalf) {
  auto to_qwen2 = [](const std::string& k) { return k.rfind("llama.", 0) == 0 ? "qwen2." + k.substr(6) : k; };
  const std::string no_bias = RewriteGguf(to_qwen2, [](GgufWriter& w) { w.SetString("general.architecture", "qwen2"); });
  EXPECT_THAT(LoadError(no_bias).message(), HasSubstr("tensor 'blk.0.attn_q.bias' is missing"));
  const std::vector<float> bq(64, 0.5f), bkv(32, 0.25f);
  const std::string with_bias = RewriteGguf(to_qwen2, [&](GgufWriter& w) {
    w.SetString("general.architecture", "qwen2");
    for (int i = 0; i < 5; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      ASSERT_TRUE(w.AddTensorBytes(p + "attn_q.bias", DType::kF32, {64}, {reinterpret_cast<const uint8_t*>(bq.data()), 256}).ok());
      ASSERT_TRUE(w.AddTensorBytes(p + "attn_k.bias", DType::kF32, {32}, {reinterpret_cast<const uint8_t*>(bkv.data()), 128}).ok());
      ASSERT_TRUE(w.AddTensorBytes(p + "attn_v.bias", DType::kF32, {32}, {reinterpret_cast<const uint8_t*>(bkv.data()), 128}).ok());
    }
  });
  auto m = LoadModel(with_bias);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->config.arch, Arch::kQwen2);
  EXPECT_EQ((*m)->config.rope_style, RopeStyle::kRotateHalf);
  EXPECT_TRUE((*m)->config.qkv_bias);
  ASSERT_TRUE((*m)->weights.layers[4].bk.present());
  EXPECT_EQ(static_cast<const float*>((*m)->weights.layers[4].bk.data)[31], 0.25f);
}

TEST_F(LoadModelEdits, GgufMismatchesNameTheTensorOrKey) {
  const std::string ffn = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetUint32("llama.feed_forward_length", 100); });
  EXPECT_THAT(LoadError(ffn).message(), HasSubstr("tensor 'blk.0.ffn_gate.weight' has shape {172, 64}, expected {100, 64}"));
  const std::string heads = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetUint32("llama.attention.head_count_kv", 2); });
  EXPECT_THAT(LoadError(heads).message(), HasSubstr("tensor 'blk.0.attn_k.weight' has shape {32, 64}, expected {16, 64}"));
  const std::string layers = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetUint32("llama.block_count", 6); });
  EXPECT_THAT(LoadError(layers).message(), HasSubstr("tensor 'blk.5.attn_norm.weight' is missing"));
  const std::string dropped = RewriteGguf(nullptr, nullptr, {"blk.3.attn_k.weight"});
  EXPECT_THAT(LoadError(dropped).message(), HasSubstr("tensor 'blk.3.attn_k.weight' is missing"));
  const std::string no_emb = RewriteGguf(nullptr, nullptr, {"token_embd.weight"});
  EXPECT_THAT(LoadError(no_emb).message(), HasSubstr("'token_embd.weight' is missing"));
  const std::string arch = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetString("general.architecture", "gpt2"); });
  EXPECT_THAT(LoadError(arch).message(), HasSubstr("architecture 'gpt2' is not supported"));
  const std::string no_hidden = RewriteGguf([](const std::string& k) { return k == "llama.embedding_length" ? "" : k; }, nullptr);
  EXPECT_THAT(LoadError(no_hidden).message(), HasSubstr("'llama.embedding_length' is missing"));
  const std::string zero = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetUint32("llama.attention.head_count", 0); });
  EXPECT_THAT(LoadError(zero).message(), HasSubstr("'llama.attention.head_count' = 0 is out of range"));
  const std::string odd = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetString("llama.block_count", "5"); });
  EXPECT_THAT(LoadError(odd).message(), HasSubstr("'llama.block_count' is not an integer"));
  const std::string rope_dims = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetUint32("llama.rope.dimension_count", 4); });
  EXPECT_THAT(LoadError(rope_dims).message(), HasSubstr("rope.dimension_count 4"));
  const std::string eps = RewriteGguf(nullptr, [](GgufWriter& w) { w.SetFloat32("llama.attention.layer_norm_rms_epsilon", -1); });
  EXPECT_THAT(LoadError(eps).message(), HasSubstr("must be positive"));
  // A vocabulary larger than the embedding table cannot be served.
  const std::string vocab = RewriteGguf(nullptr, [](GgufWriter& w) {
    std::vector<std::string> toks(600);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = "t" + std::to_string(i);
    w.SetStringArray("tokenizer.ggml.tokens", toks);
    w.SetFloatArray("tokenizer.ggml.scores", std::vector<float>(600, 0.0f));
    w.SetIntArray("tokenizer.ggml.token_type", GgufType::kInt32, std::vector<int64_t>(600, 1));
  });
  EXPECT_THAT(LoadError(vocab).message(), HasSubstr("600 tokens"));
}

TEST_F(LoadModelEdits, TruncatedGgufCopies) {
  const std::vector<uint8_t> raw = ReadAll(Gguf());
  for (size_t n : {size_t{0}, size_t{3}, size_t{23}, size_t{100}, size_t{5000}, size_t{14152}, size_t{14176}, size_t{500000}, raw.size() - 1}) {
    const std::string path = (dir_ / ("cut" + std::to_string(n) + ".gguf")).string();
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(raw.data()), n);
    LoadError(path);
  }
}

TEST_F(LoadModelEdits, HfMismatchesNameTheTensor) {
  EXPECT_THAT(LoadError(HfDir([](nlohmann::json& j) { j["intermediate_size"] = 100; })).message(),
              HasSubstr("tensor 'model.layers.0.mlp.gate_proj.weight' has shape {172, 64}, expected {100, 64}"));
  EXPECT_THAT(LoadError(HfDir([](nlohmann::json& j) { j["hidden_size"] = 32; })).message(),
              HasSubstr("tensor 'model.embed_tokens.weight' has shape {512, 64}, expected {512, 32}"));
  EXPECT_THAT(LoadError(HfDir([](nlohmann::json& j) { j["num_hidden_layers"] = 7; })).message(),
              HasSubstr("tensor 'model.layers.5.input_layernorm.weight' is missing"));
  EXPECT_THAT(LoadError(HfDir([](nlohmann::json& j) { j["model_type"] = "qwen3"; })).message(),
              HasSubstr("tensor 'model.layers.0.self_attn.q_norm.weight' is missing"));
  EXPECT_THAT(LoadError(HfDir([](nlohmann::json& j) { j["vocab_size"] = 500; })).message(),
              HasSubstr("'model.embed_tokens.weight' has shape {512, 64}, expected {500, 64}"));
  EXPECT_THAT(LoadError(HfDir([](nlohmann::json& j) { j["model_type"] = "bert"; })).message(), HasSubstr("'bert' is not supported"));
}

TEST_F(LoadModelEdits, HfTruncatedAndMisalignedSafetensors) {
  const std::vector<uint8_t> raw = ReadAll(StoriesHf() + "/model.safetensors");
  for (size_t n : {size_t{0}, size_t{7}, size_t{100}, size_t{5336}, size_t{600000}, raw.size() - 1}) {
    std::vector<uint8_t> part(raw.begin(), raw.begin() + n);
    EXPECT_THAT(LoadError(HfDir(nullptr, &part)).message(), HasSubstr("model.safetensors"));
  }
  // Header padded by one space: every tensor starts 1 byte off 4-byte alignment. The loader
  // must hand out aligned copies with identical bytes.
  uint64_t header_len;
  std::memcpy(&header_len, raw.data(), 8);
  std::vector<uint8_t> shifted(8);
  const uint64_t new_len = header_len + 1;
  std::memcpy(shifted.data(), &new_len, 8);
  shifted.insert(shifted.end(), raw.begin() + 8, raw.begin() + 8 + header_len);
  shifted.push_back(' ');
  shifted.insert(shifted.end(), raw.begin() + 8 + header_len, raw.end());
  auto m = LoadModel(HfDir(nullptr, &shifted));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto ref = LoadModel(StoriesHf());
  ASSERT_TRUE(ref.ok());
  ExpectRowShapes(**m);
  const LayerWeights& a = (*m)->weights.layers[1];
  const LayerWeights& b = (*ref)->weights.layers[1];
  EXPECT_EQ(std::memcmp(a.wq.data, b.wq.data, a.wq.nbytes), 0);
  EXPECT_EQ(std::memcmp(a.attn_norm.data, b.attn_norm.data, a.attn_norm.nbytes), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*m)->weights.tok_embeddings.data) % 4, 0u);
  EXPECT_EQ((*m)->weights.output.data, (*m)->weights.tok_embeddings.data);
}

}  // namespace
}  // namespace kvserve
