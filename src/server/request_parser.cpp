#include "server/request_parser.h"

#include <cmath>
#include <fmt/format.h>
#include <limits>

namespace kvserve::server {
namespace {

using nlohmann::json;

const char* TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_float: return "number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    default: return "value";
  }
}

ApiError WrongType(const std::string& field, const char* want, const json& got) {
  return BadRequest(fmt::format("'{}' must be {}, got {}", field, want, TypeName(got)), field);
}

// Present and not null.
bool Has(const json& body, const char* field) { return body.contains(field) && !body[field].is_null(); }

std::optional<ApiError> GetBool(const json& body, const char* field, bool* out) {
  if (!Has(body, field)) return std::nullopt;
  const json& v = body[field];
  if (!v.is_boolean()) return WrongType(field, "a boolean", v);
  *out = v.get<bool>();
  return std::nullopt;
}

std::optional<ApiError> GetFloat(const json& body, const char* field, float* out) {
  if (!Has(body, field)) return std::nullopt;
  const json& v = body[field];
  if (!v.is_number()) return WrongType(field, "a number", v);
  double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > 1e30) return BadRequest(fmt::format("'{}' must be a finite number", field), field);
  *out = static_cast<float>(d);
  return std::nullopt;
}

// Integers in [lo, hi]; floats with an integral value (e.g. 5.0) are accepted.
std::optional<ApiError> GetInt64(const json& body, const char* field, int64_t lo, int64_t hi, int64_t* out) {
  if (!Has(body, field)) return std::nullopt;
  const json& v = body[field];
  int64_t x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return BadRequest(fmt::format("'{}' must be in [{}, {}]", field, lo, hi), field);
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e18) return WrongType(field, "an integer", v);
    x = static_cast<int64_t>(d);
  } else {
    return WrongType(field, "an integer", v);
  }
  if (x < lo || x > hi) return BadRequest(fmt::format("'{}' must be in [{}, {}], got {}", field, lo, hi, x), field);
  *out = x;
  return std::nullopt;
}

std::optional<ApiError> GetInt(const json& body, const char* field, int lo, int hi, int* out) {
  int64_t x = 0;
  if (!Has(body, field)) return std::nullopt;
  if (auto e = GetInt64(body, field, lo, hi, &x)) return e;
  *out = static_cast<int>(x);
  return std::nullopt;
}

// The sampling fields both endpoints share.
std::optional<ApiError> ParseCommon(const json& body, const ParseLimits& limits, GenerationRequest* out) {
  if (!body.is_object()) return BadRequest(fmt::format("request body must be a JSON object, got {}", TypeName(body)));
  if (Has(body, "model")) {
    if (!body["model"].is_string()) return WrongType("model", "a string", body["model"]);
    out->model = body["model"].get<std::string>();
    if (out->model != limits.served_model_name)
      return NotFound(fmt::format("The model '{}' does not exist; this server serves '{}'", out->model, limits.served_model_name),
                      "model_not_found");
  } else {
    out->model = limits.served_model_name;
  }
  SamplingParams& p = out->params;
  if (auto e = GetFloat(body, "temperature", &p.temperature)) return e;
  if (Has(body, "temperature") && (p.temperature < 0 || p.temperature > 2))
    return BadRequest(fmt::format("'temperature' must be in [0, 2], got {}", p.temperature), "temperature");
  if (auto e = GetFloat(body, "top_p", &p.top_p)) return e;
  if (auto e = GetInt(body, "top_k", -1, std::numeric_limits<int>::max(), &p.top_k)) return e;
  if (auto e = GetFloat(body, "min_p", &p.min_p)) return e;
  if (auto e = GetFloat(body, "presence_penalty", &p.presence_penalty)) return e;
  if (auto e = GetFloat(body, "frequency_penalty", &p.frequency_penalty)) return e;
  if (auto e = GetFloat(body, "repetition_penalty", &p.repetition_penalty)) return e;
  if (Has(body, "seed")) {
    int64_t seed = 0;
    if (auto e = GetInt64(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &seed)) return e;
    p.seed = static_cast<uint64_t>(seed);
  }
  if (Has(body, "stop")) {
    const json& s = body["stop"];
    if (s.is_string()) {
      p.stop = {s.get<std::string>()};
    } else if (s.is_array()) {
      if (s.size() > 16) return BadRequest(fmt::format("'stop' may hold at most 16 strings, got {}", s.size()), "stop");
      for (const json& x : s) {
        if (!x.is_string()) return WrongType("stop", "a string or an array of strings", s);
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      return WrongType("stop", "a string or an array of strings", s);
    }
    for (const std::string& x : p.stop)
      if (x.empty()) return BadRequest("'stop' strings must be non-empty", "stop");
  }
  if (Has(body, "stop_token_ids")) {
    const json& s = body["stop_token_ids"];
    if (!s.is_array()) return WrongType("stop_token_ids", "an array of integers", s);
    for (const json& x : s) {
      if (!x.is_number_integer()) return WrongType("stop_token_ids", "an array of integers", s);
      int64_t id = x.get<int64_t>();
      if (id < 0 || id >= limits.vocab_size)
        return BadRequest(fmt::format("'stop_token_ids' entries must be in [0, {}), got {}", limits.vocab_size, id), "stop_token_ids");
      p.stop_token_ids.push_back(static_cast<int32_t>(id));
    }
  }
  if (Has(body, "logit_bias")) {
    const json& b = body["logit_bias"];
    if (!b.is_object()) return WrongType("logit_bias", "an object mapping token ids to numbers", b);
    for (auto it = b.begin(); it != b.end(); ++it) {
      char* end = nullptr;
      long id = std::strtol(it.key().c_str(), &end, 10);
      if (it.key().empty() || *end != '\0' || id < 0 || id >= limits.vocab_size)
        return BadRequest(fmt::format("'logit_bias' keys must be token ids in [0, {}), got '{}'", limits.vocab_size, it.key()),
                          "logit_bias");
      if (!it.value().is_number()) return WrongType("logit_bias", "an object mapping token ids to numbers", b);
      double v = it.value().get<double>();
      if (!(v >= -100 && v <= 100))
        return BadRequest(fmt::format("'logit_bias' values must be in [-100, 100], got {}", v), "logit_bias");
      p.logit_bias[static_cast<int32_t>(id)] = static_cast<float>(v);
    }
  }
  if (auto e = GetInt(body, "n", 1, limits.max_n, &p.n)) return e;
  if (Has(body, "best_of")) {
    int best_of = 1;
    if (auto e = GetInt(body, "best_of", 1, limits.max_n, &best_of)) return e;
    p.best_of = best_of;
  }
  if (auto e = GetInt(body, "min_tokens", 0, limits.max_context, &p.min_tokens)) return e;
  if (auto e = GetBool(body, "ignore_eos", &p.ignore_eos)) return e;
  if (auto e = GetBool(body, "stream", &out->stream)) return e;
  if (Has(body, "stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object()) return WrongType("stream_options", "an object", so);
    if (!out->stream) return BadRequest("'stream_options' is only allowed when 'stream' is true", "stream_options");
    if (so.contains("include_usage") && !so["include_usage"].is_null()) {
      if (!so["include_usage"].is_boolean()) return WrongType("stream_options.include_usage", "a boolean", so["include_usage"]);
      out->include_usage = so["include_usage"].get<bool>();
    }
  }
  if (Has(body, "user") && !body["user"].is_string()) return WrongType("user", "a string", body["user"]);
  if (auto e = GetInt(body, "priority", -1000000, 1000000, &out->priority)) return e;
  if (Has(body, "cache_salt")) {
    if (!body["cache_salt"].is_string()) return WrongType("cache_salt", "a string", body["cache_salt"]);
    out->cache_salt = HashCacheSalt(body["cache_salt"].get<std::string>());
  }
  return std::nullopt;
}

// SamplingParams::Validate messages start with the field name.
std::optional<ApiError> Validate(const SamplingParams& p, const ParseLimits& limits, bool stream) {
  Status st = p.Validate(limits.vocab_size);
  if (!st.ok()) {
    std::string field = st.message().substr(0, st.message().find(' '));
    return BadRequest(st.message(), field);
  }
  if (stream && p.effective_best_of() > p.n)
    return BadRequest(fmt::format("'best_of' ({}) > 'n' ({}) cannot be streamed", p.effective_best_of(), p.n), "best_of");
  return std::nullopt;
}

std::optional<ApiError> TokenIds(const json& arr, const ParseLimits& limits, std::vector<int32_t>* out) {
  for (const json& x : arr) {
    if (!x.is_number_integer()) return WrongType("prompt", "a string, an array of token ids, or an array of those", arr);
    int64_t id = x.get<int64_t>();
    if (id < 0 || id >= limits.vocab_size)
      return BadRequest(fmt::format("'prompt' token ids must be in [0, {}), got {}", limits.vocab_size, id), "prompt");
    out->push_back(static_cast<int32_t>(id));
  }
  return std::nullopt;
}

}  // namespace

uint64_t HashCacheSalt(const std::string& salt) {
  if (salt.empty()) return 0;
  uint64_t h = 1469598103934665603ull;  // FNV-1a: stable across runs and builds
  for (unsigned char c : salt) h = (h ^ c) * 1099511628211ull;
  return h == 0 ? 1 : h;
}

std::optional<ApiError> CheckPromptLength(const std::vector<int32_t>& prompt, const SamplingParams& params, int max_context) {
  if (prompt.empty()) return BadRequest("the prompt is empty (0 tokens)", "prompt");
  int n = static_cast<int>(prompt.size());
  if (n >= max_context)
    return BadRequest(fmt::format("This model's maximum context length is {} tokens, but the prompt has {} tokens "
                                  "(at least one token must remain for the completion)",
                                  max_context, n),
                      "prompt");
  if (params.max_tokens && n + *params.max_tokens > max_context)
    return BadRequest(fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                                  "({} in the prompt, {} for the completion)",
                                  max_context, n + *params.max_tokens, n, *params.max_tokens),
                      "max_tokens");
  return std::nullopt;
}

std::optional<ApiError> ParseCompletionRequest(const json& body, const ParseLimits& limits, const Tokenizer& tok,
                                               GenerationRequest* out) {
  out->chat = false;
  out->params.max_tokens = 16;  // OpenAI's default for completions
  if (auto e = ParseCommon(body, limits, out)) return e;
  if (Has(body, "max_tokens")) {
    int max_tokens = 0;
    if (auto e = GetInt(body, "max_tokens", 1, limits.max_context, &max_tokens)) return e;
    out->params.max_tokens = max_tokens;
  }
  if (Has(body, "logprobs")) {
    int lp = 0;
    if (auto e = GetInt(body, "logprobs", 0, kMaxLogprobs, &lp)) return e;
    out->params.logprobs = lp;
  }
  if (auto e = GetBool(body, "echo", &out->echo)) return e;
  if (out->echo && out->params.logprobs)
    return BadRequest("'echo' together with 'logprobs' is not supported (prompt logprobs are not computed)", "echo");
  if (Has(body, "suffix") && !(body["suffix"].is_string() && body["suffix"].get<std::string>().empty()))
    return BadRequest("'suffix' is not supported", "suffix");

  if (!Has(body, "prompt")) return BadRequest("'prompt' is required", "prompt");
  const json& pr = body["prompt"];
  auto add_text = [&](const std::string& text) {
    out->prompts.push_back(tok.Encode(text, true, false));
    out->prompt_texts.push_back(text);
  };
  auto add_ids = [&](const json& arr) -> std::optional<ApiError> {
    std::vector<int32_t> ids;
    if (auto e = TokenIds(arr, limits, &ids)) return e;
    out->prompt_texts.push_back(tok.Decode(ids, true));
    out->prompts.push_back(std::move(ids));
    return std::nullopt;
  };
  if (pr.is_string()) {
    add_text(pr.get<std::string>());
  } else if (pr.is_array()) {
    if (pr.empty()) return BadRequest("'prompt' must not be an empty array", "prompt");
    if (pr[0].is_number_integer()) {
      if (auto e = add_ids(pr)) return e;
    } else {
      if (pr.size() > static_cast<size_t>(limits.max_prompts))
        return BadRequest(fmt::format("'prompt' may hold at most {} prompts, got {}", limits.max_prompts, pr.size()), "prompt");
      for (const json& x : pr) {
        if (x.is_string()) add_text(x.get<std::string>());
        else if (x.is_array() && !x.empty()) {
          if (auto e = add_ids(x)) return e;
        } else return WrongType("prompt", "a string, an array of token ids, or an array of those", pr);
      }
    }
  } else {
    return WrongType("prompt", "a string, an array of token ids, or an array of those", pr);
  }
  if (auto e = Validate(out->params, limits, out->stream)) return e;
  for (const auto& p : out->prompts)
    if (auto e = CheckPromptLength(p, out->params, limits.max_context)) return e;
  return std::nullopt;
}

std::optional<ApiError> ParseChatRequest(const json& body, const ParseLimits& limits, GenerationRequest* out) {
  out->chat = true;
  if (auto e = ParseCommon(body, limits, out)) return e;
  // max_completion_tokens is the newer name; max_tokens the deprecated one.
  for (const char* f : {"max_tokens", "max_completion_tokens"}) {
    if (Has(body, f)) {
      int max_tokens = 0;
      if (auto e = GetInt(body, f, 1, limits.max_context, &max_tokens)) return e;
      out->params.max_tokens = max_tokens;
    }
  }
  if (auto e = GetBool(body, "logprobs", &out->chat_logprobs)) return e;
  if (Has(body, "top_logprobs")) {
    if (auto e = GetInt(body, "top_logprobs", 0, kMaxLogprobs, &out->top_logprobs)) return e;
    if (!out->chat_logprobs) return BadRequest("'top_logprobs' requires 'logprobs': true", "top_logprobs");
  }
  if (out->chat_logprobs) out->params.logprobs = out->top_logprobs;
  if (Has(body, "response_format")) {
    const json& rf = body["response_format"];
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
      return WrongType("response_format", "an object with a string 'type'", rf);
    if (rf["type"].get<std::string>() != "text")
      return BadRequest(fmt::format("'response_format' type '{}' is not supported (only 'text')", rf["type"].get<std::string>()),
                        "response_format");
  }
  if (Has(body, "tools") && !(body["tools"].is_array() && body["tools"].empty()))
    return BadRequest("'tools' (function calling) is not supported", "tools");
  if (Has(body, "echo")) return BadRequest("'echo' is not a chat completions field", "echo");

  if (!Has(body, "messages")) return BadRequest("'messages' is required", "messages");
  const json& msgs = body["messages"];
  if (!msgs.is_array()) return WrongType("messages", "an array", msgs);
  if (msgs.empty()) return BadRequest("'messages' must hold at least one message", "messages");
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) return WrongType(where, "an object", m);
    if (!m.contains("role") || !m["role"].is_string()) return BadRequest(where + ".role must be a string", where + ".role");
    ChatMessage cm;
    cm.role = m["role"].get<std::string>();
    if (cm.role != "system" && cm.role != "developer" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool")
      return BadRequest(fmt::format("{}.role must be one of system, developer, user, assistant, tool; got '{}'", where, cm.role),
                        where + ".role");
    if (!m.contains("content") || m["content"].is_null()) {
      if (cm.role != "assistant") return BadRequest(where + ".content is required", where + ".content");
    } else if (m["content"].is_string()) {
      cm.content = m["content"].get<std::string>();
    } else if (m["content"].is_array()) {
      for (const json& part : m["content"]) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          return BadRequest(where + ".content parts must be {\"type\": \"text\", \"text\": string} (only text is supported)",
                            where + ".content");
        cm.content += part["text"].get<std::string>();
      }
    } else {
      return WrongType(where + ".content", "a string or an array of text parts", m["content"]);
    }
    out->messages.push_back(std::move(cm));
  }
  return Validate(out->params, limits, out->stream);
}

}  // namespace kvserve::server
