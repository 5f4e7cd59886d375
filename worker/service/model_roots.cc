// ModelRoots: realpath, then a path-prefix test on whole components.
#include "worker/service/model_roots.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rami::service {

namespace {

// realpath(3), or "" when the path does not resolve.
std::string Canonical(const std::string& path) {
  char resolved[PATH_MAX];
  if (path.empty() || realpath(path.c_str(), resolved) == nullptr) return "";
  return resolved;
}

}  // namespace

absl::StatusOr<ModelRoots> ModelRoots::Make(const std::vector<std::string>& dirs) {
  ModelRoots roots;
  for (const std::string& dir : dirs) {
    const std::string canonical = Canonical(dir);
    struct stat st {};
    if (canonical.empty() || stat(canonical.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model_roots: \"", dir, "\" is not an existing directory"));
    }
    roots.roots_.push_back(canonical);
  }
  return roots;
}

absl::StatusOr<ModelRoots> ModelRoots::Parse(absl::string_view flag_value) {
  return Make(absl::StrSplit(flag_value, ',', absl::SkipEmpty()));
}

absl::StatusOr<std::string> ModelRoots::Confine(const std::string& model_dir) const {
  if (roots_.empty()) {
    return absl::PermissionDeniedError(
        "model_dir: this worker was started without --model_roots, so it loads no model; "
        "start it with --model_roots=DIR[,DIR...]");
  }
  const std::string canonical = Canonical(model_dir);
  if (!canonical.empty()) {
    for (const std::string& root : roots_) {
      // "/" as a root holds everything; else the root itself or a path below it.
      if (root == "/" || canonical == root || absl::StartsWith(canonical, root + "/")) {
        return canonical;
      }
    }
  }
  // One message for a path outside the roots and for one that does not exist.
  return absl::PermissionDeniedError(
      absl::StrCat("model_dir: \"", model_dir, "\" is not inside this worker's --model_roots"));
}

}  // namespace rami::service
