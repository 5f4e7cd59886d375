// Fuzzes the gRPC API's input: raw bytes through rami.v1.GenerateRequest's parser, then
// api::ValidateRequest against a token-ids-only model and one with a tokenizer and a chat
// template (prompts encoded, messages rendered), as InferenceService::Generate does.
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "coordinator/api/request_validation.h"
#include "google/protobuf/stubs/logging.h"
#include "tests/fuzz/fuzz_models.h"

// Protobuf logs every string field that is not UTF-8 (a parse failure here): quiet, so the
// fuzzer's own output stays readable and fast.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rami::v1::GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  for (const rami::api::ModelFrontEnd* model :
       {&rami::fuzz::TinyModel(), &rami::fuzz::QwenModel()}) {
    // The request's model must name the served one; try it as sent and as "" (the default).
    (void)rami::api::ValidateRequest(request, *model, rami::fuzz::Limits(), now);
    rami::v1::GenerateRequest unnamed = request;
    unnamed.clear_model();
    (void)rami::api::ValidateRequest(unnamed, *model, rami::fuzz::Limits(), now);
  }
  return 0;
}
