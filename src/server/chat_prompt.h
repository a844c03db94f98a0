// Chat messages -> the prompt text the model sees.
//
// Models without a chat template (stories260K has none) get kvserve's documented
// fallback, a plain transcript:
//   "System: <content>\n" / "User: <content>\n" / "Assistant: <content>\n" per message
//   (developer -> "System", tool -> "Tool"), then "Assistant:" to prompt the reply.
// The text is encoded with the vocabulary's own BOS and special tokens kept literal.
#pragma once

#include <string>
#include <vector>

#include "server/request_parser.h"
#include "util/status.h"

namespace kvserve::server {

struct ChatPrompt {
  std::string text;
  bool add_special = true;    // BOS from the vocabulary (the model's templates write it themselves)
  bool parse_special = false; // special tokens in the text become ids (model templates only)
};

std::string RenderFallbackChat(const std::vector<ChatMessage>& messages);

// The model's template (src/chat, from the GGUF / tokenizer_config.json) when the
// vocabulary has one, else the fallback. InvalidArgument when the template fails to render.
StatusOr<ChatPrompt> RenderChatPrompt(const Tokenizer& tok, const std::vector<ChatMessage>& messages);

}  // namespace kvserve::server
