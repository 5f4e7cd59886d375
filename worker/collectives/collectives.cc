// The single-rank collectives.
#include "worker/collectives/collectives.h"

#include <algorithm>

namespace rami::collectives {

absl::Status SingleRankCollectives::AllGather(const float* in, size_t count, float* out) {
  if (in != out) std::copy(in, in + count, out);
  return absl::OkStatus();
}

}  // namespace rami::collectives
