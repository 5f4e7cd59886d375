// Reading golden.json into GoldenCase; see golden_files.h.
#include "tests/golden/golden_files.h"

#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace rami::testing {

std::string GoldenModelDir(const std::string& name) {
  return std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/" + name;
}

absl::StatusOr<std::vector<GoldenCase>> LoadGoldenCases(const std::string& name) {
  const std::string path = GoldenModelDir(name) + "/golden.json";
  std::ifstream in(path);
  if (!in.good()) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  // nlohmann reports a parse error, a missing key or a wrong type by throwing: caught here.
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    std::vector<GoldenCase> cases;
    for (const nlohmann::json& c : j.at("cases")) {
      GoldenCase g{.prompt = c.at("prompt").get<std::vector<int32_t>>(),
                   .prefill_logits = c.at("prefill_logits").get<std::vector<std::vector<float>>>(),
                   .greedy = c.at("greedy_tokens").get<std::vector<int32_t>>(),
                   .decode_logits = c.at("decode_logits").get<std::vector<std::vector<float>>>(),
                   .dms = std::nullopt};
      if (c.contains("alpha")) {
        g.dms =
            GoldenDms{.eviction_rate = c.at("eviction_rate").get<double>(),
                      .live_after_prefill =
                          c.at("live_after_prefill").get<std::vector<std::vector<int64_t>>>(),
                      .live_final = c.at("live_final").get<std::vector<std::vector<int64_t>>>(),
                      .alpha = c.at("alpha").get<std::vector<std::vector<std::vector<uint8_t>>>>()};
      }
      cases.push_back(std::move(g));
    }
    if (cases.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no cases"));
    return cases;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace rami::testing
