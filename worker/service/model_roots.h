// ModelRoots: the directories a worker loads models from (--model_roots). LoadShard's
// model_dir is resolved with realpath — `..` and symlinks cannot step out — and must lie
// inside one of them; anything else is PERMISSION_DENIED with one message whether or not the
// path exists, so the port cannot be used to probe the filesystem. No roots: no load at all.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rami::service {

class ModelRoots {
 public:
  ModelRoots() = default;  // none: every model_dir is refused
  // `dirs` canonicalized; INVALID_ARGUMENT naming --model_roots for one that is not an existing
  // directory.
  static absl::StatusOr<ModelRoots> Make(const std::vector<std::string>& dirs);
  // "DIR[,DIR...]" (empty entries skipped) → Make.
  static absl::StatusOr<ModelRoots> Parse(absl::string_view flag_value);

  // The canonical path of `model_dir` when it lies inside a root (or is one); else
  // PERMISSION_DENIED naming --model_roots.
  absl::StatusOr<std::string> Confine(const std::string& model_dir) const;
  const std::vector<std::string>& roots() const { return roots_; }

 private:
  std::vector<std::string> roots_;  // canonical, no trailing '/'
};

}  // namespace rami::service
