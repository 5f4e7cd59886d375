// The models the request fuzzers validate against: a token-ids-only model shaped like the tiny
// DMS checkpoint (tests/api/test_models.h's TinyModel) and "qwen", the golden qwen2 tokenizer
// with the Qwen3 chat template, so prompts and messages are tokenized and rendered too.
#pragma once

#include "coordinator/api/model_front_end.h"
#include "coordinator/api/server_limits.h"

namespace rami::fuzz {

const api::ModelFrontEnd& TinyModel();
const api::ModelFrontEnd& QwenModel();  // aborts when the golden files cannot be loaded
const api::ServerLimits& Limits();      // the defaults

}  // namespace rami::fuzz
