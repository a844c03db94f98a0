// libFuzzer target: arbitrary bytes as a chat template (or, when the input is a
// tokenizer_config.json, its chat_template), parsed and rendered against a fixed
// conversation. Any outcome is fine except a crash, a sanitizer report, a hang or a leak:
// errors must come back as Status.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"

namespace {

const nlohmann::ordered_json& Context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are a helpful assistant."},
      {"role": "user", "content": "  Hello!\n"},
      {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHi.", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "content": "{\"temp\": 20}"},
      {"role": "user", "content": "Tell me a joke."}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "enable_thinking": false,
    "bos_token": "<s>", "eos_token": "</s>"})");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  // Seeds are real tokenizer_config.json files: fuzz their templates, not the JSON text.
  const nlohmann::json cfg = nlohmann::json::parse(source, nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_discarded() && cfg.is_object()) {
    auto c = kvserve::ChatTemplateConfigFromJson(cfg, "fuzz input");
    if (c.ok()) source = c->chat_template;
  }
  auto t = kvserve::ChatTemplate::Parse(source);
  if (!t.ok()) return 0;
  kvserve::chat::RenderLimits limits;
  limits.max_steps = 20000;  // keeps each execution fast; the bound itself is what is tested
  limits.max_output_bytes = 1 << 20;
  t->set_limits(limits);
  auto r = t->Render(Context());
  (void)r;
  return 0;
}
