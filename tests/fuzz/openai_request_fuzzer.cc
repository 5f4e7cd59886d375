// Fuzzes the HTTP API's input: a body through ParseOpenAiRequest (the first byte picks
// /v1/completions or /v1/chat/completions), then every translated job through
// api::ValidateRequest against the "qwen" model, as the completions handler does.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/time/time.h"
#include "coordinator/api/request_validation.h"
#include "coordinator/http/openai_request.h"
#include "tests/fuzz/fuzz_models.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto endpoint = (data[0] & 1) != 0 ? rami::http::Endpoint::kChatCompletions
                                           : rami::http::Endpoint::kCompletions;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto request = rami::http::ParseOpenAiRequest(endpoint, body, "qwen");
  if (!request.ok()) {
    (void)rami::http::WithHttpFieldNames(request.status(), endpoint);
    return 0;
  }
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  for (const rami::v1::GenerateRequest& job : request->jobs) {
    auto validated =
        rami::api::ValidateRequest(job, rami::fuzz::QwenModel(), rami::fuzz::Limits(), now);
    if (!validated.ok()) (void)rami::http::WithHttpFieldNames(validated.status(), endpoint);
  }
  return 0;
}
