#include "tools/synth_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "model/gguf_reader.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/vocab_loader.h"
#include "tokenizer/tokenizer.h"
#include "tools/vocab_metadata.h"

namespace kvserve {
namespace {

namespace fs = std::filesystem;

class SynthModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvserve_synth_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// Mean and standard deviation of a whole tensor, dequantized.
std::pair<double, double> Moments(const Tensor& t) {
  std::vector<float> row(t.cols());
  const size_t row_bytes = RowBytes(t.dtype, t.cols());
  double sum = 0, sq = 0;
  for (int64_t r = 0; r < t.rows(); ++r) {
    DequantizeRow(t.dtype, static_cast<const uint8_t*>(t.data) + r * row_bytes, row.data(), t.cols());
    for (float x : row) {
      sum += x;
      sq += double(x) * x;
    }
  }
  const double n = double(t.numel());
  return {sum / n, std::sqrt(sq / n - (sum / n) * (sum / n))};
}

const char* kTexts[] = {"Hello world! The quick brown fox jumps over the lazy dog.", "  leading spaces, digits 1234567 and\nnewlines\t\ttabs",
                        "Ünïcödé: 日本語のテキスト, emoji 🙂, математика."};

TEST_F(SynthModelTest, SmolLm2TwoLayersQ8LoadsWithTheRealConfigAndTokenizer) {
  SynthOptions o;
  o.shape = "smollm2-135m";
  o.dtype = DType::kQ8_0;
  o.seed = 42;
  o.num_layers = 2;
  auto r = WriteSynthModel(o, Path("smol.gguf"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_tensors, 1 + 2 * 9 + 1);  // embd, 9 per layer, output_norm; tied: no output

  auto m = LoadModel(Path("smol.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const ModelConfig& c = (*m)->config;
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_context, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.rope_style, RopeStyle::kAdjacentPairs);
  ASSERT_EQ((*m)->rope_inv_freq.size(), 32u);
  EXPECT_NEAR((*m)->rope_inv_freq[1], std::pow(100000.0, -2.0 / 64), 1e-7);

  const ModelWeights& w = (*m)->weights;
  EXPECT_EQ(w.tok_embeddings.dtype, DType::kQ8_0);
  EXPECT_EQ(w.output.data, w.tok_embeddings.data);
  EXPECT_EQ(w.layers[1].w_down.dtype, DType::kQ8_0);
  EXPECT_EQ(w.layers[1].w_down.shape, (std::vector<int64_t>{576, 1536}));
  ASSERT_EQ(w.layers[0].attn_norm.dtype, DType::kF32);
  for (int i = 0; i < 576; ++i) ASSERT_EQ(static_cast<const float*>(w.layers[0].attn_norm.data)[i], 1.0f);
  for (const Tensor* t : {&w.tok_embeddings, &w.layers[0].wq, &w.layers[1].w_gate}) {
    auto [mean, sd] = Moments(*t);
    EXPECT_NEAR(mean, 0.0, 2e-4) << t->name;
    EXPECT_NEAR(sd, 0.02, 4e-4) << t->name;
  }

  // The vocabulary is the real SmolLM2 one: same ids as the tokenizer.json, and text round-trips.
  auto direct = LoadVocabFromTokenizerJson(SynthTokenizerPath("smollm2-135m").value());
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();
  EXPECT_EQ((*m)->vocab.tokens, direct->tokens);
  EXPECT_EQ((*m)->vocab.merges, direct->merges);
  EXPECT_EQ((*m)->vocab.pre_tokenizer, "smollm");
  EXPECT_EQ((*m)->vocab.bos_id, direct->bos_id);
  EXPECT_EQ((*m)->vocab.eos_id, direct->eos_id);
  EXPECT_EQ((*m)->vocab.eog_ids, direct->eog_ids);
  auto from_file = Tokenizer::Create((*m)->vocab);
  auto reference = Tokenizer::Create(*direct);
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  for (const char* text : kTexts) {
    const std::vector<int32_t> ids = (*from_file)->Encode(text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, (*reference)->Encode(text, false, false)) << text;
    EXPECT_GT(ids.size(), 5u);
    EXPECT_EQ((*from_file)->Decode(ids, /*skip_special=*/false), text);
  }
  auto g = GgufFile::Open(Path("smol.gguf"));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)->GetString("tokenizer.ggml.model").value(), "gpt2");
  EXPECT_EQ((*g)->GetString("tokenizer.ggml.pre").value(), "smollm");
  EXPECT_EQ((*g)->GetInt("general.file_type").value(), 7);
}

TEST_F(SynthModelTest, SameSeedSameBytesOtherSeedOtherWeights) {
  SynthOptions o;
  o.shape = "smollm2-135m";
  o.dtype = DType::kQ4_0;
  o.num_layers = 1;
  o.seed = 1;
  ASSERT_TRUE(WriteSynthModel(o, Path("a.gguf")).ok());
  ASSERT_TRUE(WriteSynthModel(o, Path("b.gguf")).ok());
  o.seed = 2;
  ASSERT_TRUE(WriteSynthModel(o, Path("c.gguf")).ok());
  auto a = GgufFile::Open(Path("a.gguf")), b = GgufFile::Open(Path("b.gguf")), c = GgufFile::Open(Path("c.gguf"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const Tensor* ta = (*a)->FindTensor("blk.0.ffn_up.weight");
  const Tensor* tb = (*b)->FindTensor("blk.0.ffn_up.weight");
  const Tensor* tc = (*c)->FindTensor("blk.0.ffn_up.weight");
  ASSERT_TRUE(ta && tb && tc);
  EXPECT_EQ(ta->dtype, DType::kQ4_0);
  EXPECT_EQ(std::memcmp(ta->data, tb->data, ta->nbytes), 0);
  EXPECT_NE(std::memcmp(ta->data, tc->data, ta->nbytes), 0);
  // Different tensors of one file are different streams too.
  const Tensor* gate = (*a)->FindTensor("blk.0.ffn_gate.weight");
  EXPECT_NE(std::memcmp(ta->data, gate->data, ta->nbytes), 0);
  EXPECT_EQ(fs::file_size(Path("a.gguf")), fs::file_size(Path("b.gguf")));
}

// Qwen2.5 shape: qwen2 arch, qkv biases, the Qwen tokenizer padded to 151936 rows.
TEST_F(SynthModelTest, Qwen25PadsTheVocabularyAndHasBiases) {
  SynthOptions o;
  o.shape = "qwen2.5-0.5b";
  o.dtype = DType::kQ4_0;
  o.num_layers = 1;
  ASSERT_TRUE(WriteSynthModel(o, Path("q.gguf")).ok());
  auto m = LoadModel(Path("q.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const ModelConfig& c = (*m)->config;
  EXPECT_EQ(c.arch, Arch::kQwen2);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.num_heads, 14);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.intermediate_size, 4864);
  EXPECT_EQ(c.max_context, 32768);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_TRUE((*m)->weights.layers[0].bq.present());
  EXPECT_EQ((*m)->weights.layers[0].bk.shape, (std::vector<int64_t>{128}));
  const VocabSpec& v = (*m)->vocab;
  ASSERT_EQ(v.tokens.size(), 151936u);
  EXPECT_EQ(v.pre_tokenizer, "qwen2");
  EXPECT_EQ(v.tokens.back(), "[PAD151935]");
  EXPECT_EQ(v.types.back(), TokenType::kUnused);
  const int im_end = [&] {
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (v.tokens[i] == "<|im_end|>") return static_cast<int>(i);
    return -1;
  }();
  ASSERT_GE(im_end, 151643);
  EXPECT_EQ(v.types[im_end], TokenType::kControl);
  auto tok = Tokenizer::Create(v);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  for (const char* text : kTexts) EXPECT_EQ((*tok)->Decode((*tok)->Encode(text, false, false), false), text);
}

// SentencePiece families (TinyLlama / Llama 2) are written as tokenizer.ggml.model "llama".
TEST_F(SynthModelTest, TinyLlamaCarriesTheSentencePieceVocabulary) {
  SynthOptions o;
  o.shape = "tinyllama-1.1b";
  o.dtype = DType::kQ4_0;
  o.num_layers = 1;
  ASSERT_TRUE(WriteSynthModel(o, Path("t.gguf")).ok());
  auto m = LoadModel(Path("t.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->config.num_kv_heads, 4);
  EXPECT_EQ((*m)->config.max_context, 2048);
  EXPECT_FALSE((*m)->config.tied_embeddings);
  EXPECT_NE((*m)->weights.output.data, (*m)->weights.tok_embeddings.data);
  auto direct = LoadVocabFromSentencePieceModel(SynthTokenizerPath("tinyllama-1.1b").value());
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();
  const VocabSpec& v = (*m)->vocab;
  EXPECT_EQ(v.kind, VocabSpec::Kind::kSentencePiece);
  EXPECT_EQ(v.tokens, direct->tokens);
  EXPECT_EQ(v.scores, direct->scores);
  EXPECT_EQ(v.types, direct->types);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_space_prefix);
  auto a = Tokenizer::Create(v);
  auto b = Tokenizer::Create(*direct);
  ASSERT_TRUE(a.ok() && b.ok());
  for (const char* text : kTexts) {
    const auto ids = (*a)->Encode(text, true, false);
    EXPECT_EQ(ids, (*b)->Encode(text, true, false)) << text;
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ((*a)->Decode(ids, /*skip_special=*/true), text);
  }
}

TEST(SynthConfig, Llama3HasRopeScalingAndBadInputsAreErrors) {
  SynthOptions o;
  o.shape = "llama3-8b";
  auto c = SynthModelConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c->num_layers, 32);
  EXPECT_EQ(c->vocab_size, 128256);
  EXPECT_EQ(c->intermediate_size, 14336);

  o.shape = "gpt5";
  auto bad = SynthModelConfig(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'gpt5'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("smollm2-135m"), std::string::npos);
  EXPECT_FALSE(ParseSynthDType("q5_1").ok());
  EXPECT_EQ(ParseSynthDType("bf16").value(), DType::kBF16);
  o.shape = "smollm2-135m";
  o.num_layers = -1;
  EXPECT_FALSE(SynthModelConfig(o).ok());

  VocabSpec v;
  v.kind = VocabSpec::Kind::kByteLevelBpe;
  v.tokens = {"a", "b", "c"};
  v.types.assign(3, TokenType::kNormal);
  EXPECT_FALSE(PadVocab(v, 2).ok());
  ASSERT_TRUE(PadVocab(v, 5).ok());
  EXPECT_EQ(v.tokens[4], "[PAD4]");
}

}  // namespace
}  // namespace kvserve
