// The real chat templates shipped in ../shared render a fixed conversation to exactly
// the strings transformers' apply_chat_template would give. Each expectation below was
// derived by reading the template's logic by hand (the derivation is in the comment
// above it) and written out literally; the Llama 3 and Qwen3 (plain, thinking-off, tools)
// strings were afterwards also checked against Python jinja2 3.1.6 with HF's settings.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "chat/chat_template.h"
#include "model/gguf_reader.h"
#include "util/paths.h"

namespace kvserve {
namespace {

using ojson = nlohmann::ordered_json;

// system + user + assistant + user. The first user turn has surrounding whitespace so
// the tests see which templates trim content (Llama 3) and which keep it verbatim.
const char* kConversation = R"([
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "  Hello!\n"},
  {"role": "assistant", "content": "Hi there. How can I help?"},
  {"role": "user", "content": "Tell me a joke."}
])";

ChatTemplateConfig LoadConfig(const std::string& rel) {
  auto cfg = LoadChatTemplateConfig(SharedPath(rel));
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();  // a missing fixture fails the test
  return cfg.ok() ? *cfg : ChatTemplateConfig{};
}

std::string Apply(const ChatTemplateConfig& cfg, const std::string& messages, bool add_generation_prompt,
                  const ojson& extra = ojson::object()) {
  auto r = ApplyChatTemplate(cfg.chat_template, ojson::parse(messages), add_generation_prompt, cfg.bos_token,
                             cfg.eos_token, extra);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::string("<error>");
}

// ---------------------------------------------------------------- Llama 3
// tokenizer_config.json: bos "<|begin_of_text|>", eos "<|end_of_text|>", template
//   {% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role']
//   + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}
//   {% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}
//   {{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
// The filter binds tighter than +, so only the content is trimmed ("  Hello!\n" -> "Hello!").
// BOS goes before the first message only. The template never reads add_generation_prompt:
// the assistant header is always appended, so both renderings are identical.
const char* kLlama3Expected =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n";

TEST(ChatTemplateReal, Llama3Config) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/llama3/tokenizer_config.json");
  EXPECT_EQ(cfg.bos_token, "<|begin_of_text|>");
  EXPECT_EQ(cfg.eos_token, "<|end_of_text|>");
  EXPECT_NE(cfg.chat_template.find("<|start_header_id|>"), std::string::npos);
}

TEST(ChatTemplateReal, Llama3WithGenerationPrompt) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/llama3/tokenizer_config.json");
  EXPECT_EQ(Apply(cfg, kConversation, true), kLlama3Expected);
}

TEST(ChatTemplateReal, Llama3WithoutGenerationPrompt) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/llama3/tokenizer_config.json");
  EXPECT_EQ(Apply(cfg, kConversation, false), kLlama3Expected);
}

// ---------------------------------------------------------------- Qwen3
// tokenizer_config.json: bos null (""), eos "<|im_end|>". Every tag is written {%- / {{-,
// so the template's own newlines and indentation never reach the output (trim_blocks eats
// the newline after each %}, and the next tag's "-" strips the indentation).
// No tools: messages[0] is system -> "<|im_start|>system\n" + content + "<|im_end|>\n".
// ns.last_query_index: walking messages backwards, the first user message whose content
// is not a <tool_response> is index 3, so last_query_index = 3.
// Main loop: index 0 (system, loop.first) prints nothing more; users print
// "<|im_start|>user\n" + content (verbatim, untrimmed) + "<|im_end|>\n"; the assistant at
// index 2 has no reasoning_content and no "</think>", and 2 > 3 is false, so it prints
// "<|im_start|>assistant\n" + content + "<|im_end|>\n".
// add_generation_prompt adds "<|im_start|>assistant\n"; enable_thinking is false adds
// "<think>\n\n</think>\n\n" after it (undefined or true adds nothing).
const char* kQwen3History =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n  Hello!\n<|im_end|>\n"
    "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
    "<|im_start|>user\nTell me a joke.<|im_end|>\n";

TEST(ChatTemplateReal, Qwen3Config) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  EXPECT_EQ(cfg.bos_token, "");
  EXPECT_EQ(cfg.eos_token, "<|im_end|>");
}

TEST(ChatTemplateReal, Qwen3WithoutGenerationPrompt) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  EXPECT_EQ(Apply(cfg, kConversation, false), kQwen3History);
}

TEST(ChatTemplateReal, Qwen3WithGenerationPrompt) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  EXPECT_EQ(Apply(cfg, kConversation, true), std::string(kQwen3History) + "<|im_start|>assistant\n");
  // enable_thinking=true behaves like undefined.
  EXPECT_EQ(Apply(cfg, kConversation, true, ojson{{"enable_thinking", true}}),
            std::string(kQwen3History) + "<|im_start|>assistant\n");
}

TEST(ChatTemplateReal, Qwen3ThinkingDisabled) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  EXPECT_EQ(Apply(cfg, kConversation, true, ojson{{"enable_thinking", false}}),
            std::string(kQwen3History) + "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Without a generation prompt the flag has no effect.
  EXPECT_EQ(Apply(cfg, kConversation, false, ojson{{"enable_thinking", false}}), kQwen3History);
}

// An assistant turn after the last user query keeps its reasoning. content has "</think>":
//   content = content.split('</think>')[-1].lstrip('\n')                       -> "It is 4."
//   reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
//                                                                              -> "Simple arithmetic."
// index 1 > last_query_index 0 and loop.last, so it prints
//   "<|im_start|>assistant\n<think>\n" + reasoning + "\n</think>\n\n" + content + "<|im_end|>\n".
TEST(ChatTemplateReal, Qwen3ReasoningAfterLastQueryIsKept) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  const char* msgs = R"([
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\nIt is 4."}
  ])";
  EXPECT_EQ(Apply(cfg, msgs, false),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nSimple arithmetic.\n</think>\n\nIt is 4.<|im_end|>\n");
  // The same via the reasoning_content field (it takes precedence over parsing content).
  const char* with_field = R"([
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "It is 4.", "reasoning_content": "\nSimple arithmetic.\n"}
  ])";
  EXPECT_EQ(Apply(cfg, with_field, false),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nSimple arithmetic.\n</think>\n\nIt is 4.<|im_end|>\n");
}

// Reasoning in a turn before the last user query is dropped: the assistant at index 1 is not
// > last_query_index 2, so only "<|im_start|>assistant\n" + "It is 4." is printed.
TEST(ChatTemplateReal, Qwen3ReasoningBeforeLastQueryIsDropped) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  const char* msgs = R"([
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\nIt is 4."},
    {"role": "user", "content": "And 3+3?"}
  ])";
  EXPECT_EQ(Apply(cfg, msgs, true),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\nIt is 4.<|im_end|>\n"
            "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

// Tools: the system block becomes "<|im_start|>system\n" + system content + "\n\n" + the
// "# Tools" preamble, one "\n" + (tool | tojson) per tool (json.dumps: ", " and ": "
// separators, keys in the given order), then the closing instructions and "<|im_end|>\n".
// last_query_index = 1 (index 3 is a tool message, index 2 an assistant). The assistant at
// index 2 has empty content and no reasoning; 2 > 1 but it is not loop.last and has no
// reasoning, so it prints "<|im_start|>assistant\n" + "" ; its tool call (first, content empty:
// no leading "\n") prints '<tool_call>\n{"name": "get_weather", "arguments": ' +
// arguments|tojson + '}\n</tool_call>', then "<|im_end|>\n". The tool message follows an
// assistant, so it opens "<|im_start|>user", adds "\n<tool_response>\n" + content +
// "\n</tool_response>", and closes with "<|im_end|>\n" because it is loop.last.
TEST(ChatTemplateReal, Qwen3ToolsAndToolCalls) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  const ojson extra = ojson::parse(R"({"tools": [{"type": "function", "function": {"name": "get_weather",
      "description": "Get the weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
      "required": ["city"]}}}]})");
  const char* msgs = R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "{\"temp\": 20}"}
  ])";
  EXPECT_EQ(Apply(cfg, msgs, true, extra),
            "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist "
            "with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            R"({"type": "function", "function": {"name": "get_weather", "description": "Get the weather", )"
            R"("parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})"
            "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n");
}

// An empty conversation: messages[0] is undefined and the template reads .role from it, which
// Jinja reports as an error (not a crash).
TEST(ChatTemplateReal, Qwen3EmptyConversationIsAnError) {
  const ChatTemplateConfig cfg = LoadConfig("tokenizers/qwen3/tokenizer_config.json");
  auto r = ApplyChatTemplate(cfg.chat_template, ojson::array(), true, "", "<|im_end|>", ojson::object());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("index 0 out of range (reading attribute 'role')"), std::string::npos)
      << r.status().message();
}

// ---------------------------------------------------------------- Phi-3 (GGUF metadata)
// ggml-vocab-phi-3.gguf carries tokenizer.chat_template:
//   {{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}
//   {{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}
//   {% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}
// bos_token is tokens[bos_token_id = 1] = "<s>". The system message matches neither branch and
// is dropped; every user turn already ends with the assistant header; add_generation_prompt is
// never read, so both renderings are identical.
TEST(ChatTemplateReal, Phi3FromGgufMetadata) {
  auto gguf = GgufFile::Open(SharedPath("tokenizers/vectors/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto tmpl = (*gguf)->GetString("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
  auto tokens = (*gguf)->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  auto bos_id = (*gguf)->GetInt("tokenizer.ggml.bos_token_id");
  auto eos_id = (*gguf)->GetInt("tokenizer.ggml.eos_token_id");
  ASSERT_TRUE(bos_id.ok() && eos_id.ok());
  ChatTemplateConfig cfg{*tmpl, (*tokens).at(static_cast<size_t>(*bos_id)), (*tokens).at(static_cast<size_t>(*eos_id))};
  EXPECT_EQ(cfg.bos_token, "<s>");
  const std::string expected =
      "<s><|user|>\n  Hello!\n<|end|>\n<|assistant|>\n"
      "Hi there. How can I help?<|end|>\n"
      "<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n";
  EXPECT_EQ(Apply(cfg, kConversation, true), expected);
  EXPECT_EQ(Apply(cfg, kConversation, false), expected);
}

// ---------------------------------------------------------------- SmolLM2-135M
// The fixture has only tokenizer.json and config.json (its README: no tokenizer_config.json was
// available), and neither carries a chat_template, so there is nothing to render; the loader
// must say so rather than invent one.
TEST(ChatTemplateReal, SmolLM2HasNoChatTemplate) {
  for (const char* rel : {"tokenizers/smollm2-135m/tokenizer.json", "tokenizers/smollm2-135m/config.json"}) {
    std::ifstream in(SharedPath(rel));
    ASSERT_TRUE(in.good()) << "missing fixture " << rel;
    std::stringstream ss;
    ss << in.rdbuf();
    const nlohmann::json j = nlohmann::json::parse(ss.str());
    EXPECT_FALSE(j.contains("chat_template")) << rel;
    auto cfg = LoadChatTemplateConfig(SharedPath(rel));
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.status().code(), Status::Code::kNotFound);
    EXPECT_NE(cfg.status().message().find("no 'chat_template'"), std::string::npos) << cfg.status().message();
  }
  std::ifstream absent(SharedPath("tokenizers/smollm2-135m/tokenizer_config.json"));
  EXPECT_FALSE(absent.good());
}

// ---------------------------------------------------------------- config loader
TEST(ChatTemplateConfigTest, NamedTemplateListAndAddedTokenObjects) {
  const nlohmann::json cfg = nlohmann::json::parse(R"({
    "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": null,
    "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  auto d = ChatTemplateConfigFromJson(cfg, "cfg");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->chat_template, "D");
  EXPECT_EQ(d->bos_token, "<s>");
  EXPECT_EQ(d->eos_token, "");
  auto t = ChatTemplateConfigFromJson(cfg, "cfg", "tool_use");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->chat_template, "T");
  auto missing = ChatTemplateConfigFromJson(cfg, "cfg", "rag");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "cfg: no chat template named 'rag'");
  auto bad = ChatTemplateConfigFromJson(nlohmann::json::parse(R"({"chat_template": 5})"), "cfg");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("must be a string or a list"), std::string::npos);
  auto io = LoadChatTemplateConfig("/nonexistent/tokenizer_config.json");
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.status().code(), Status::Code::kIOError);
}

}  // namespace
}  // namespace kvserve
