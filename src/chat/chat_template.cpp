#include "chat/chat_template.h"

#include <fstream>
#include <sstream>

#include "chat/template_parser.h"

namespace kvserve {

StatusOr<ChatTemplate> ChatTemplate::Parse(std::string source) {
  KV_ASSIGN_OR_RETURN(chat::Body body, chat::ParseTemplate(source));
  ChatTemplate t;
  t.source_ = std::move(source);
  t.body_ = std::make_shared<const chat::Body>(std::move(body));
  return t;
}

StatusOr<std::string> ChatTemplate::RenderValue(const chat::Value& context) const {
  if (!context.is_mapping()) return Status::InvalidArgument("chat template context must be a JSON object, got " + context.TypeName());
  return chat::RenderTemplate(*body_, context, limits_);
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& context) const {
  return RenderValue(chat::Value::FromJson(context));
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context) const {
  return RenderValue(chat::Value::FromJson(context));
}

namespace {
template <typename J>
StatusOr<std::string> ApplyImpl(const std::string& source, const J& messages, bool add_generation_prompt,
                                const std::string& bos_token, const std::string& eos_token, const J& extra) {
  if (!messages.is_array()) return Status::InvalidArgument("chat messages must be a JSON array");
  if (!extra.is_null() && !extra.is_object()) return Status::InvalidArgument("chat template extra variables must be a JSON object");
  J context = J::object();
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) context[it.key()] = it.value();
  }
  context["messages"] = messages;
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token;
  context["eos_token"] = eos_token;
  KV_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(source));
  return t.Render(context);
}

StatusOr<std::string> TokenString(const nlohmann::json& config, const char* key, const std::string& where) {
  if (!config.contains(key) || config[key].is_null()) return std::string();
  const nlohmann::json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return Status::InvalidArgument(where + ": '" + key + "' must be a string, null or {\"content\": ...}");
}
}  // namespace

StatusOr<std::string> ApplyChatTemplate(const std::string& source, const nlohmann::json& messages,
                                        bool add_generation_prompt, const std::string& bos_token,
                                        const std::string& eos_token, const nlohmann::json& extra) {
  return ApplyImpl(source, messages, add_generation_prompt, bos_token, eos_token, extra);
}

StatusOr<std::string> ApplyChatTemplate(const std::string& source, const nlohmann::ordered_json& messages,
                                        bool add_generation_prompt, const std::string& bos_token,
                                        const std::string& eos_token, const nlohmann::ordered_json& extra) {
  return ApplyImpl(source, messages, add_generation_prompt, bos_token, eos_token, extra);
}

StatusOr<ChatTemplateConfig> ChatTemplateConfigFromJson(const nlohmann::json& config, const std::string& where,
                                                        const std::string& name) {
  if (!config.is_object()) return Status::InvalidArgument(where + ": expected a JSON object");
  ChatTemplateConfig out;
  KV_ASSIGN_OR_RETURN(out.bos_token, TokenString(config, "bos_token", where));
  KV_ASSIGN_OR_RETURN(out.eos_token, TokenString(config, "eos_token", where));
  if (!config.contains("chat_template") || config["chat_template"].is_null()) {
    return Status::NotFound(where + ": no 'chat_template'");
  }
  const nlohmann::json& ct = config["chat_template"];
  const std::string want = name.empty() ? "default" : name;
  if (ct.is_string()) {
    if (!name.empty() && name != "default") return Status::NotFound(where + ": no chat template named '" + name + "'");
    out.chat_template = ct.get<std::string>();
    return out;
  }
  if (!ct.is_array()) return Status::InvalidArgument(where + ": 'chat_template' must be a string or a list of {name, template}");
  for (const auto& e : ct) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") || !e["template"].is_string()) {
      return Status::InvalidArgument(where + ": 'chat_template' list entries need string 'name' and 'template'");
    }
    if (e["name"].get<std::string>() == want) {
      out.chat_template = e["template"].get<std::string>();
      return out;
    }
  }
  return Status::NotFound(where + ": no chat template named '" + want + "'");
}

StatusOr<ChatTemplateConfig> LoadChatTemplateConfig(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json config = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return Status::InvalidArgument(path + ": not valid JSON");
  return ChatTemplateConfigFromJson(config, path, name);
}

}  // namespace kvserve
