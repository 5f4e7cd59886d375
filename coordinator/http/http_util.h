// Small helpers of the HTTP front end: an error as OpenAI's JSON with its HTTP status.
#pragma once

#include <httplib.h>

#include "absl/status/status.h"
#include "coordinator/http/openai_response.h"

namespace rami::http {

inline void SendError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatus(status.code());
  res.set_content(ErrorJson(status).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

}  // namespace rami::http
