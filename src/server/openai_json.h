// Response bodies and streaming chunks in OpenAI's JSON shapes, plus SSE framing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sampling/logprobs.h"
#include "tokenizer/tokenizer.h"

namespace kvserve::server {

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
  nlohmann::json ToJson() const;
};

// One finished choice.
struct ChoiceResult {
  int index = 0;
  std::string text;
  std::string finish_reason;
  std::vector<int32_t> tokens;
  std::vector<LogprobInfo> logprobs;  // empty unless asked
};

// The text a client sees for one token (bytes decoded lossily to UTF-8 on dump;
// special tokens by their piece text).
std::string TokenString(const Tokenizer& tok, int32_t id);

// Completions `logprobs` object: tokens, token_logprobs, top_logprobs, text_offset.
// text_offset starts at `offset0` (the echoed prompt's length when echo is on).
nlohmann::json CompletionLogprobs(const Tokenizer& tok, const std::vector<int32_t>& tokens,
                                  const std::vector<LogprobInfo>& lps, size_t offset0);
// Chat `logprobs` object: {"content": [{token, logprob, bytes, top_logprobs: [...]}]}.
nlohmann::json ChatLogprobs(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<LogprobInfo>& lps,
                            int top_n);

nlohmann::json CompletionResponse(const std::string& id, int64_t created, const std::string& model,
                                  const nlohmann::json& choices, const Usage& usage);
nlohmann::json ChatResponse(const std::string& id, int64_t created, const std::string& model, const nlohmann::json& choices,
                            const Usage& usage);

// Streaming chunks. finish_reason empty -> null. logprobs null when not asked.
nlohmann::json CompletionChunk(const std::string& id, int64_t created, const std::string& model, int index,
                               const std::string& text, const std::string& finish_reason, const nlohmann::json& logprobs);
// delta: {"role": "assistant", "content": ""} for the first chunk, {"content": text} after, {} at the end.
nlohmann::json ChatChunk(const std::string& id, int64_t created, const std::string& model, int index,
                         const nlohmann::json& delta, const std::string& finish_reason, const nlohmann::json& logprobs);
// The final usage chunk of stream_options.include_usage: empty choices.
nlohmann::json UsageChunk(const std::string& id, int64_t created, const std::string& model, bool chat, const Usage& usage);

// Serializes with invalid UTF-8 replaced by U+FFFD (a token may be half a character).
std::string Dump(const nlohmann::json& j);
// "data: <json>\n\n"
std::string SseEvent(const nlohmann::json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace kvserve::server
