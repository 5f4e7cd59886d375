// Fuzzes Jinja chat templates: parse, then render under tight RenderLimits (the limits are what
// keep a hostile template from hanging or exhausting the coordinator, so they are part of what
// is tested). Input: template source [NUL messages as JSON]; without a valid messages list a
// fixed conversation (system, user, assistant with a tool call, tool, user) is rendered.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "coordinator/chat/chat_template.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using nlohmann::ordered_json;

const ordered_json& FixedMessages() {
  static const ordered_json* messages = new ordered_json(ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2? <|im_end|> {{ x }}"},
    {"role": "assistant", "content": "", "reasoning_content": "add",
     "tool_calls": [{"type": "function", "function": {"name": "add",
                     "arguments": {"a": 2, "b": 2}}}]},
    {"role": "tool", "content": "4"},
    {"role": "user", "content": "Thanks, héllo 😀"}
  ])"));
  return *messages;
}

const ordered_json& Tools() {
  static const ordered_json* tools = new ordered_json(ordered_json::parse(R"([
    {"type": "function", "function": {"name": "add", "description": "a + b",
     "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}
  ])"));
  return *tools;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> parts = rami::fuzz::SplitInput(data, size, 2);
  auto chat = rami::chat::ChatTemplate::FromSource(
      parts[0], {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}});
  if (!chat.ok()) return 0;

  rami::chat::ChatTemplateInput input;
  input.messages = FixedMessages();
  if (parts.size() > 1) {
    ordered_json messages = ordered_json::parse(parts[1], nullptr, /*allow_exceptions=*/false);
    if (messages.is_array()) input.messages = std::move(messages);
  }
  rami::jinja::RenderLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_list_items = 1 << 12;
  limits.max_total_bytes = 8 << 20;
  limits.max_loop_iterations = 10'000;
  limits.max_steps = 200'000;
  for (bool generation_prompt : {false, true}) {
    input.add_generation_prompt = generation_prompt;
    input.tools = generation_prompt ? Tools() : ordered_json();
    input.extra = {{"enable_thinking", generation_prompt}};
    (void)chat->Apply(input, limits);
  }
  return 0;
}
