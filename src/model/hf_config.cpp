#include "model/hf_config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace kvserve {

using nlohmann::json;

namespace {

Status ReadRopeScaling(const json& rs, const std::string& path, ModelConfig& c) {
  if (!rs.is_object()) return Status::Ok();
  std::string type;
  if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"];
  else if (rs.contains("type") && rs["type"].is_string()) type = rs["type"];
  auto num = [&](const char* k, float def) { return rs.contains(k) && rs[k].is_number() ? rs[k].get<float>() : def; };
  if (type.empty() || type == "default") return Status::Ok();
  if (type == "llama3") {
    c.rope_scaling.type = RopeScaling::Type::kLlama3;
    c.rope_scaling.factor = num("factor", 8.0f);
    c.rope_scaling.low_freq_factor = num("low_freq_factor", 1.0f);
    c.rope_scaling.high_freq_factor = num("high_freq_factor", 4.0f);
    const float orig = num("original_max_position_embeddings", 8192);
    if (!(orig > 0 && orig <= float(1 << 30))) return Status::InvalidArgument(path + ": original_max_position_embeddings is out of range");
    c.rope_scaling.original_max_position = static_cast<int>(orig);
  } else if (type == "linear") {
    c.rope_scaling.type = RopeScaling::Type::kLinear;
    c.rope_scaling.factor = num("factor", 1.0f);
  } else {
    return Status::Unsupported(path + ": rope scaling type '" + type + "' is not supported (llama3, linear)");
  }
  if (!(c.rope_scaling.factor > 0)) return Status::InvalidArgument(path + ": rope scaling factor must be > 0");
  if (type == "llama3" && (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor) || !(c.rope_scaling.low_freq_factor > 0) ||
                           c.rope_scaling.original_max_position <= 0))
    return Status::InvalidArgument(path + ": llama3 rope scaling needs high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0");
  return Status::Ok();
}

}  // namespace

namespace {

// model_type names the family; older or hand-written configs may carry only architectures[].
StatusOr<Arch> ReadArch(const json& j, const std::string& path) {
  std::string model_type;
  if (j.contains("model_type") && j["model_type"].is_string()) model_type = j["model_type"].get<std::string>();
  if (model_type.empty() && j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    const std::string a = j["architectures"][0].get<std::string>();
    if (a == "LlamaForCausalLM") model_type = "llama";
    else if (a == "MistralForCausalLM") model_type = "mistral";
    else if (a == "Qwen2ForCausalLM") model_type = "qwen2";
    else if (a == "Qwen3ForCausalLM") model_type = "qwen3";
    else model_type = a;
  }
  if (model_type == "llama") return Arch::kLlama;
  if (model_type == "mistral") return Arch::kMistral;
  if (model_type == "qwen2") return Arch::kQwen2;
  if (model_type == "qwen3") return Arch::kQwen3;
  return Status::Unsupported(path + ": model_type '" + model_type + "' is not supported (llama, mistral, qwen2, qwen3)");
}

StatusOr<ModelConfig> ParseHfConfigJson(const json& j, const std::string& path) {
  ModelConfig c;
  KV_ASSIGN_OR_RETURN(c.arch, ReadArch(j, path));

  auto get_int = [&](const char* key, int def, bool required) -> StatusOr<int> {
    if (!j.contains(key) || j[key].is_null()) {
      if (required) return Status::InvalidArgument(path + ": '" + key + "' is missing");
      return def;
    }
    if (!j[key].is_number_integer()) return Status::InvalidArgument(path + ": '" + key + "' must be an integer");
    int64_t v = j[key].get<int64_t>();
    if (v < 0 || v > (int64_t{1} << 30)) return Status::InvalidArgument(fmt::format("{}: '{}' = {} is out of range", path, key, v));
    return static_cast<int>(v);
  };
  KV_ASSIGN_OR_RETURN(c.vocab_size, get_int("vocab_size", 0, true));
  KV_ASSIGN_OR_RETURN(c.hidden_size, get_int("hidden_size", 0, true));
  KV_ASSIGN_OR_RETURN(c.intermediate_size, get_int("intermediate_size", 0, true));
  KV_ASSIGN_OR_RETURN(c.num_layers, get_int("num_hidden_layers", 0, true));
  KV_ASSIGN_OR_RETURN(c.num_heads, get_int("num_attention_heads", 0, true));
  KV_ASSIGN_OR_RETURN(c.num_kv_heads, get_int("num_key_value_heads", c.num_heads, false));
  KV_ASSIGN_OR_RETURN(c.max_context, get_int("max_position_embeddings", 2048, false));
  if (c.num_heads <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.vocab_size <= 0 || c.num_kv_heads <= 0 ||
      c.intermediate_size <= 0 || c.max_context <= 0)
    return Status::InvalidArgument(path + ": sizes must be positive");
  int default_head_dim = c.hidden_size / c.num_heads;
  KV_ASSIGN_OR_RETURN(c.head_dim, get_int("head_dim", default_head_dim, false));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) return Status::InvalidArgument(fmt::format("{}: head_dim {} must be positive and even", path, c.head_dim));
  if (int64_t{c.num_heads} * c.head_dim > (int64_t{1} << 30))
    return Status::InvalidArgument(fmt::format("{}: {} heads of dimension {} is out of range", path, c.num_heads, c.head_dim));
  if (c.num_heads % c.num_kv_heads != 0)
    return Status::InvalidArgument(fmt::format("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", path, c.num_heads, c.num_kv_heads));
  if (j.contains("rms_norm_eps") && j["rms_norm_eps"].is_number()) c.rms_norm_eps = j["rms_norm_eps"].get<float>();
  // Rope: transformers 5 nests it in rope_parameters; older files use top-level keys.
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const json& rp = j["rope_parameters"];
    if (rp.contains("rope_theta") && rp["rope_theta"].is_number()) c.rope_theta = rp["rope_theta"].get<float>();
    KV_RETURN_IF_ERROR(ReadRopeScaling(rp, path, c));
  }
  if (j.contains("rope_theta") && j["rope_theta"].is_number()) c.rope_theta = j["rope_theta"].get<float>();
  if (j.contains("rope_scaling")) KV_RETURN_IF_ERROR(ReadRopeScaling(j["rope_scaling"], path, c));
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) return Status::InvalidArgument(path + ": rope_theta must be a positive number");
  if (!(c.rms_norm_eps > 0)) return Status::InvalidArgument(path + ": rms_norm_eps must be positive");
  c.tied_embeddings = false;  // transformers' default for these families
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()) c.tied_embeddings = j["tie_word_embeddings"];
  c.qkv_bias = c.arch == Arch::kQwen2 || (j.contains("attention_bias") && j["attention_bias"].is_boolean() && j["attention_bias"].get<bool>());
  c.qk_norm = c.arch == Arch::kQwen3;
  // Qwen configs carry a sliding_window value but disable it with use_sliding_window=false.
  const bool window_on = c.arch == Arch::kMistral ||
                         (j.contains("use_sliding_window") && j["use_sliding_window"].is_boolean() && j["use_sliding_window"].get<bool>());
  if (window_on && j.contains("sliding_window") && j["sliding_window"].is_number_integer()) {
    const int64_t w = j["sliding_window"].get<int64_t>();
    if (w < 0 || w > (int64_t{1} << 30)) return Status::InvalidArgument(fmt::format("{}: sliding_window {} is out of range", path, w));
    c.sliding_window = static_cast<int>(w);
  }
  c.rope_style = RopeStyle::kRotateHalf;
  return c;
}

}  // namespace

StatusOr<ModelConfig> ParseHfConfig(const std::string& text, const std::string& path) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corrupt(path + ": not a JSON object");
  try {
    return ParseHfConfigJson(j, path);
  } catch (const json::exception& e) {  // a value of an unexpected JSON type somewhere we did not pre-check
    return Status::Corrupt(path + ": " + e.what());
  }
}

StatusOr<ModelConfig> LoadHfConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IOError(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseHfConfig(ss.str(), path);
}

}  // namespace kvserve
