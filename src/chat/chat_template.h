// Chat templates: renders a model's Jinja chat template (tokenizer_config.json
// "chat_template" or GGUF "tokenizer.chat_template") the way Hugging Face
// transformers does (jinja2 with trim_blocks and lstrip_blocks, raise_exception and
// strftime_now available, tojson = json.dumps(ensure_ascii=False)).
//
// Supported: {{ }}, {% if/elif/else %}, {% for %} (tuple targets, `if` filter, else,
// loop.index/index0/revindex/first/last/length/previtem/nextitem, break/continue),
// {% set %} (tuples, namespace attributes, block form), {% macro %}, {% raw %},
// {% generation %}, comments, whitespace control (-, +), Python expressions (and/or/not,
// in/not in, comparisons, + - * / // % ** ~, conditional expressions, literals,
// slicing, attribute/item access, str/dict methods), Jinja filters and tests (see
// template_builtins.cpp). Python tuples are lists (they print as [..]).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/template_ast.h"
#include "chat/template_renderer.h"
#include "util/status.h"

namespace kvserve {

class ChatTemplate {
 public:
  // Syntax errors name line and column: "chat template 3:14: ...".
  static StatusOr<ChatTemplate> Parse(std::string source);

  // REQUIRES: context is a JSON object; its keys become template variables.
  // nlohmann::json objects iterate keys sorted, so tojson prints them sorted; pass an
  // ordered_json to keep the client's key order (as Python dicts do).
  StatusOr<std::string> Render(const nlohmann::json& context) const;
  StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;

  const std::string& source() const { return source_; }
  void set_limits(const chat::RenderLimits& limits) { limits_ = limits; }

 private:
  StatusOr<std::string> RenderValue(const chat::Value& context) const;

  std::string source_;
  std::shared_ptr<const chat::Body> body_;
  chat::RenderLimits limits_;
};

// Renders `source` for a conversation: the context holds messages,
// add_generation_prompt, bos_token, eos_token, plus every key of `extra` (a JSON
// object such as {"tools": [...], "enable_thinking": false}).
StatusOr<std::string> ApplyChatTemplate(const std::string& source, const nlohmann::json& messages,
                                        bool add_generation_prompt, const std::string& bos_token,
                                        const std::string& eos_token, const nlohmann::json& extra = {});
StatusOr<std::string> ApplyChatTemplate(const std::string& source, const nlohmann::ordered_json& messages,
                                        bool add_generation_prompt, const std::string& bos_token,
                                        const std::string& eos_token, const nlohmann::ordered_json& extra);

// What tokenizer_config.json says about chat formatting.
struct ChatTemplateConfig {
  std::string chat_template;  // Jinja source
  std::string bos_token;      // "" when null or absent
  std::string eos_token;      // "" when null or absent
};

// Reads tokenizer_config.json. chat_template may be a string or a list of
// {"name", "template"} objects; `name` picks one ("default" when empty). bos/eos may be
// strings, null, or AddedToken objects {"content": ...}. NotFound if the file has no
// chat_template (or none with that name).
StatusOr<ChatTemplateConfig> LoadChatTemplateConfig(const std::string& tokenizer_config_path,
                                                    const std::string& name = "");
// The same from an already parsed JSON object; `where` names the source in errors.
StatusOr<ChatTemplateConfig> ChatTemplateConfigFromJson(const nlohmann::json& config, const std::string& where,
                                                        const std::string& name = "");

}  // namespace kvserve
