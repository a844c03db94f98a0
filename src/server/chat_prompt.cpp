#include "server/chat_prompt.h"

#include "chat/chat_template.h"

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
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    for (const ChatMessage& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    std::string bos = tok.bos_id() >= 0 ? tok.TokenText(tok.bos_id()) : "";
    std::string eos = tok.eos_id() >= 0 ? tok.TokenText(tok.eos_id()) : "";
    // The model's templates write BOS and special tokens as text themselves.
    auto text = ApplyChatTemplate(tok.chat_template(), msgs, true, bos, eos, nlohmann::ordered_json::object());
    if (!text.ok()) return Status::InvalidArgument("chat template: " + text.status().message());
    p.text = std::move(text).value();
    p.add_special = false;
    p.parse_special = true;
    return p;
  }
  p.text = RenderFallbackChat(messages);
  return p;
}

}  // namespace kvserve::server
