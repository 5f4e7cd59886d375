// NewPublicJobId: 16 bytes of getrandom(2) as 32 hex digits.
#include "coordinator/runner/job_id.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

#include "base/check.h"

namespace rami::coordinator {

std::string NewPublicJobId() {
  uint8_t bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    RAMI_CHECK(n > 0, "getrandom failed (errno %d)", errno);
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "job-";
  for (uint8_t b : bytes) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

}  // namespace rami::coordinator
