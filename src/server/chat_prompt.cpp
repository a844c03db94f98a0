#include "server/chat_prompt.h"

namespace kvserve::server {

std::string RenderFallbackChat(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) {
    const char* who = "User";
    if (m.role == "system" || m.role == "developer") who = "System";
    else if (m.role == "assistant") who = "Assistant";
    else if (m.role == "tool") who = "Tool";
    out += who;
    out += ": ";
    out += m.content;
    out += "\n";
  }
  out += "Assistant:";
  return out;
}

StatusOr<ChatPrompt> RenderChatPrompt(const Tokenizer& tok, const std::vector<ChatMessage>& messages) {
  ChatPrompt p;
  if (!tok.chat_template().empty()) {
    // The Jinja renderer (src/chat) is not wired in yet: refuse instead of guessing a format
    // the model was not trained on.
    return Status::Unsupported("this model's chat template cannot be rendered yet; use /v1/completions");
  }
  p.text = RenderFallbackChat(messages);
  return p;
}

}  // namespace kvserve::server
