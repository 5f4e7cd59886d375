// The table of supported architectures and config keys shared by several of them.
#include "worker/checkpoint/architectures/architecture.h"

#include <array>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace rami::checkpoint {
namespace {

std::array<const ArchitectureSpec*, 5> AllSpecs() {
  return {&LlamaSpec(), &Qwen2Spec(), &Qwen3Spec(), &DeepseekV2Spec(), &DeepseekV3Spec()};
}

}  // namespace

const ArchitectureSpec* FindArchitecture(std::string_view hf_name) {
  for (const ArchitectureSpec* spec : AllSpecs()) {
    if (spec->hf_name == hf_name) return spec;
  }
  return nullptr;
}

std::string SupportedArchitectures() {
  std::vector<std::string> names;
  for (const ArchitectureSpec* spec : AllSpecs()) names.emplace_back(spec->hf_name);
  return absl::StrJoin(names, ", ");
}

absl::Status RejectSlidingWindow(const ConfigReader& reader) {
  RAMI_ASSIGN_OR_RETURN(bool sliding, reader.Bool("use_sliding_window", false));
  if (sliding) return reader.Error("use_sliding_window", "true is not supported");
  return absl::OkStatus();
}

absl::Status ReadDmsConfig(const ConfigReader& reader, DmsConfig* dms) {
  bool any_key = false;
  for (const auto& [key, value] : reader.json().items()) {
    if (key.rfind("dms_", 0) == 0) any_key = true;
  }
  // The published checkpoint selects its DMS modeling code through auto_map (dms.md §1).
  if (reader.Has("auto_map") &&
      reader.json().at("auto_map").dump().find("dms") != std::string::npos) {
    any_key = true;
  }
  dms->enabled = any_key;
  if (!any_key) return absl::OkStatus();
  RAMI_ASSIGN_OR_RETURN(int64_t window, reader.Int("dms_window_size", 512, 0, 1 << 20));
  dms->window_size = static_cast<int>(window);
  RAMI_ASSIGN_OR_RETURN(dms->alpha_scale, reader.Double("dms_alpha_scale", 100.0));
  RAMI_ASSIGN_OR_RETURN(dms->initial_alpha_offset, reader.Double("dms_initial_alpha_offset", 5.0));
  RAMI_ASSIGN_OR_RETURN(dms->separate_alpha, reader.Bool("dms_separate_alpha", false));
  RAMI_ASSIGN_OR_RETURN(dms->adapter_bias, reader.Bool("attention_bias", false));
  RAMI_ASSIGN_OR_RETURN(std::string per, reader.String("dms_alpha_per", "head"));
  if (per != "head" && per != "layer") {
    return reader.Error("dms_alpha_per",
                        absl::StrCat("expected \"head\" or \"layer\", found \"", per, "\""));
  }
  dms->alpha_per_layer = per == "layer";
  RAMI_ASSIGN_OR_RETURN(dms->disable_eviction, reader.Bool("dms_disable_eviction", false));
  RAMI_ASSIGN_OR_RETURN(dms->target_cr, reader.Double("dms_cr", 8.0));
  return absl::OkStatus();
}

}  // namespace rami::checkpoint
