#include "server/openai_json.h"

namespace kvserve::server {

using nlohmann::json;

json Usage::ToJson() const {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

std::string TokenString(const Tokenizer& tok, int32_t id) {
  if (id < 0 || id >= tok.vocab_size()) return "";
  if (tok.IsSpecial(id)) return tok.TokenText(id);
  return tok.TokenBytes(id);
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string SseEvent(const json& j) { return "data: " + Dump(j) + "\n\n"; }

namespace {

// OpenAI's "bytes": the UTF-8 bytes of the token as integers.
json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json Base(const std::string& id, const char* object, int64_t created, const std::string& model) {
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

json ReasonOrNull(const std::string& r) { return r.empty() ? json(nullptr) : json(r); }

}  // namespace

json CompletionLogprobs(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<LogprobInfo>& lps,
                        size_t offset0) {
  json out = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  size_t offset = offset0;
  size_t n = std::min(tokens.size(), lps.size());
  for (size_t i = 0; i < n; ++i) {
    std::string s = TokenString(tok, tokens[i]);
    out["tokens"].push_back(s);
    out["token_logprobs"].push_back(lps[i].logprob);
    json top = json::object();
    for (const TokenLogprob& t : lps[i].top) {
      std::string ts = TokenString(tok, t.token);
      if (!top.contains(ts)) top[ts] = t.logprob;  // distinct ids may share a string; keep the likelier
    }
    out["top_logprobs"].push_back(top);
    out["text_offset"].push_back(offset);
    offset += s.size();
  }
  return out;
}

json ChatLogprobs(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<LogprobInfo>& lps, int top_n) {
  json content = json::array();
  size_t n = std::min(tokens.size(), lps.size());
  for (size_t i = 0; i < n; ++i) {
    std::string s = TokenString(tok, tokens[i]);
    json top = json::array();
    for (size_t k = 0; k < lps[i].top.size() && static_cast<int>(k) < top_n; ++k) {
      std::string ts = TokenString(tok, lps[i].top[k].token);
      top.push_back({{"token", ts}, {"logprob", lps[i].top[k].logprob}, {"bytes", Bytes(ts)}});
    }
    content.push_back({{"token", s}, {"logprob", lps[i].logprob}, {"bytes", Bytes(s)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json CompletionResponse(const std::string& id, int64_t created, const std::string& model, const json& choices,
                        const Usage& usage) {
  json j = Base(id, "text_completion", created, model);
  j["choices"] = choices;
  j["usage"] = usage.ToJson();
  return j;
}

json ChatResponse(const std::string& id, int64_t created, const std::string& model, const json& choices, const Usage& usage) {
  json j = Base(id, "chat.completion", created, model);
  j["choices"] = choices;
  j["usage"] = usage.ToJson();
  return j;
}

json CompletionChunk(const std::string& id, int64_t created, const std::string& model, int index, const std::string& text,
                     const std::string& finish_reason, const json& logprobs) {
  json j = Base(id, "text_completion", created, model);
  j["choices"] = json::array({{{"index", index}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", ReasonOrNull(finish_reason)}}});
  return j;
}

json ChatChunk(const std::string& id, int64_t created, const std::string& model, int index, const json& delta,
               const std::string& finish_reason, const json& logprobs) {
  json j = Base(id, "chat.completion.chunk", created, model);
  j["choices"] = json::array({{{"index", index}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", ReasonOrNull(finish_reason)}}});
  return j;
}

json UsageChunk(const std::string& id, int64_t created, const std::string& model, bool chat, const Usage& usage) {
  json j = Base(id, chat ? "chat.completion.chunk" : "text_completion", created, model);
  j["choices"] = json::array();
  j["usage"] = usage.ToJson();
  return j;
}

}  // namespace kvserve::server
