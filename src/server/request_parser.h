// OpenAI request bodies -> engine inputs. Field names follow OpenAI (and vLLM for the
// sampling extensions: top_k, min_p, repetition_penalty, min_tokens, ignore_eos,
// stop_token_ids); kvserve's own extensions are `priority` (lower runs sooner) and
// `cache_salt` (requests with different salts never share prefix-cache blocks).
// Every rejection is a 400 ApiError naming the field and the allowed range or type.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sampling/sampling_params.h"
#include "server/api_error.h"
#include "tokenizer/tokenizer.h"

namespace kvserve::server {

struct ChatMessage {
  std::string role;  // system, developer, user, assistant, tool
  std::string content;
};

struct GenerationRequest {
  bool chat = false;
  std::string model;
  // Completions: one entry per prompt. Chat: filled by SetChatPrompt.
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> prompt_texts;  // for echo: the given text, or the ids decoded
  std::vector<ChatMessage> messages;      // chat only
  SamplingParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions only
  int top_logprobs = 0;        // chat: logprobs=true + top_logprobs
  bool chat_logprobs = false;
  int priority = 0;
  uint64_t cache_salt = 0;
};

struct ParseLimits {
  std::string served_model_name;
  int max_context = 0;  // prompt + completion tokens
  int vocab_size = 0;
  int max_n = 128;      // n and best_of
  int max_prompts = 64; // prompts in one completions request
};

// The field shared by both endpoints; returns nullopt on success.
std::optional<ApiError> ParseCompletionRequest(const nlohmann::json& body, const ParseLimits& limits, const Tokenizer& tok,
                                               GenerationRequest* out);
std::optional<ApiError> ParseChatRequest(const nlohmann::json& body, const ParseLimits& limits, GenerationRequest* out);

// 400 when a prompt is empty, or prompt (+ max_tokens when set) exceeds the context;
// the message says the numbers.
std::optional<ApiError> CheckPromptLength(const std::vector<int32_t>& prompt, const SamplingParams& params, int max_context);

// Stable 64-bit hash of a cache_salt string (0 = no salt).
uint64_t HashCacheSalt(const std::string& salt);

}  // namespace kvserve::server
