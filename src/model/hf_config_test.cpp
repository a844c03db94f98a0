// config.json parsing: the real fixture configs (both spellings) and the families' variants.
#include "model/hf_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "util/paths.h"

namespace kvserve {
namespace {

using ::testing::HasSubstr;

TEST(HfConfig, Stories260KOldSpelling) {
  auto c = LoadHfConfig(SharedPath("models/stories260K/hf/config.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, Arch::kLlama);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 172);
  EXPECT_EQ(c->num_layers, 5);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->max_context, 512);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_EQ(c->rope_theta, 10000.0f);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ(c->rope_style, RopeStyle::kRotateHalf);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->sliding_window, 0);
}

TEST(HfConfig, Prose25mTransformers5Spelling) {
  auto c = LoadHfConfig(SharedPath("models/prose-25m/hf/config.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, Arch::kLlama);
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->hidden_size, 384);
  EXPECT_EQ(c->intermediate_size, 1024);
  EXPECT_EQ(c->num_layers, 8);
  EXPECT_EQ(c->num_heads, 6);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->max_context, 2048);
  EXPECT_EQ(c->rope_theta, 10000.0f);
  EXPECT_TRUE(c->tied_embeddings);
}

constexpr const char* kBase = R"("vocab_size": 1000, "hidden_size": 256, "intermediate_size": 512,
  "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2)";

StatusOr<ModelConfig> P(const std::string& extra) { return ParseHfConfig(std::string("{") + kBase + extra + "}", "cfg.json"); }

TEST(HfConfig, Llama3RopeScalingBothSpellings) {
  const std::string scaling =
      R"({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})";
  auto old = P(R"(, "model_type": "llama", "rope_theta": 500000.0, "rope_scaling": )" + scaling);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->rope_theta, 500000.0f);
  EXPECT_EQ(old->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(old->rope_scaling.factor, 32.0f);
  EXPECT_EQ(old->rope_scaling.original_max_position, 8192);
  auto v5 = P(R"(, "model_type": "llama", "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0,
      "low_freq_factor": 2.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 4096})");
  ASSERT_TRUE(v5.ok()) << v5.status().ToString();
  EXPECT_EQ(v5->rope_theta, 500000.0f);
  EXPECT_EQ(v5->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(v5->rope_scaling.factor, 8.0f);
  EXPECT_EQ(v5->rope_scaling.low_freq_factor, 2.0f);
  EXPECT_EQ(v5->rope_scaling.original_max_position, 4096);
  auto linear = P(R"(, "model_type": "llama", "rope_scaling": {"type": "linear", "factor": 4})");
  ASSERT_TRUE(linear.ok());
  EXPECT_EQ(linear->rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(linear->rope_scaling.factor, 4.0f);
  auto none = P(R"(, "model_type": "llama", "rope_scaling": null)");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->rope_scaling.type, RopeScaling::Type::kNone);
}

TEST(HfConfig, Families) {
  auto qwen2 = P(R"(, "model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": false, "tie_word_embeddings": true)");
  ASSERT_TRUE(qwen2.ok());
  EXPECT_EQ(qwen2->arch, Arch::kQwen2);
  EXPECT_TRUE(qwen2->qkv_bias);
  EXPECT_FALSE(qwen2->qk_norm);
  EXPECT_EQ(qwen2->sliding_window, 0);  // present but disabled
  EXPECT_TRUE(qwen2->tied_embeddings);
  auto qwen3 = P(R"(, "model_type": "qwen3", "head_dim": 128)");
  ASSERT_TRUE(qwen3.ok());
  EXPECT_EQ(qwen3->arch, Arch::kQwen3);
  EXPECT_TRUE(qwen3->qk_norm);
  EXPECT_FALSE(qwen3->qkv_bias);
  EXPECT_EQ(qwen3->head_dim, 128);  // explicit, not hidden/heads = 32
  EXPECT_EQ(qwen3->q_dim(), 1024);
  auto mistral = P(R"(, "model_type": "mistral", "sliding_window": 4096)");
  ASSERT_TRUE(mistral.ok());
  EXPECT_EQ(mistral->arch, Arch::kMistral);
  EXPECT_EQ(mistral->sliding_window, 4096);
  EXPECT_FALSE(mistral->tied_embeddings);
  auto mistral_null = P(R"(, "model_type": "mistral", "sliding_window": null)");
  ASSERT_TRUE(mistral_null.ok());
  EXPECT_EQ(mistral_null->sliding_window, 0);
  auto by_arch = P(R"(, "architectures": ["Qwen2ForCausalLM"])");
  ASSERT_TRUE(by_arch.ok()) << by_arch.status().ToString();
  EXPECT_EQ(by_arch->arch, Arch::kQwen2);
  auto gqa_default = ParseHfConfig(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 4})", "cfg.json");
  ASSERT_TRUE(gqa_default.ok());
  EXPECT_EQ(gqa_default->num_kv_heads, 4);
  EXPECT_EQ(gqa_default->head_dim, 16);
}

void ExpectError(const StatusOr<ModelConfig>& c, const std::string& substr) {
  ASSERT_FALSE(c.ok()) << "expected an error containing '" << substr << "'";
  EXPECT_THAT(c.status().message(), HasSubstr("cfg.json"));
  EXPECT_THAT(c.status().message(), HasSubstr(substr));
}

TEST(HfConfig, Errors) {
  ExpectError(ParseHfConfig("[]", "cfg.json"), "not a JSON object");
  ExpectError(ParseHfConfig("{", "cfg.json"), "not a JSON object");
  ExpectError(P(R"(, "model_type": "gpt2")"), "model_type 'gpt2' is not supported");
  ExpectError(P(R"(, "model_type": 7)"), "model_type '' is not supported");
  ExpectError(P(R"(, "architectures": ["BertModel"])"), "'BertModel' is not supported");
  ExpectError(ParseHfConfig(R"({"model_type": "llama", "hidden_size": 64})", "cfg.json"), "'vocab_size' is missing");
  ExpectError(P(R"(, "model_type": "llama", "head_dim": 7)"), "head_dim 7");
  ExpectError(ParseHfConfig(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3})", "cfg.json"), "not a multiple");
  ExpectError(ParseHfConfig(R"({"model_type": "llama", "vocab_size": "10", "hidden_size": 64})", "cfg.json"), "'vocab_size' must be an integer");
  ExpectError(ParseHfConfig(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": -64})", "cfg.json"), "out of range");
  ExpectError(ParseHfConfig(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
      "num_hidden_layers": 0, "num_attention_heads": 4})", "cfg.json"), "must be positive");
  ExpectError(P(R"(, "model_type": "llama", "rope_scaling": {"type": "yarn", "factor": 4})"), "rope scaling type 'yarn'");
  ExpectError(P(R"(, "model_type": "llama", "rope_scaling": {"type": "linear", "factor": 0})"), "factor must be > 0");
  ExpectError(P(R"(, "model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4})"),
              "high_freq_factor > low_freq_factor");
  ExpectError(P(R"(, "model_type": "llama", "rope_theta": -1)"), "rope_theta");
  ExpectError(P(R"(, "model_type": "llama", "num_attention_heads": 1073741824, "head_dim": 1073741824)"), "out of range");
}

TEST(HfConfig, MissingFile) {
  auto c = LoadHfConfig("/nonexistent/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/config.json"));
}

}  // namespace
}  // namespace kvserve
