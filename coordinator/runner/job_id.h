// Public job ids: "job-" and 128 random bits in hex, from the kernel's CSPRNG (getrandom), so
// an id cannot be guessed from another one. (The runner's own JobId stays a counter.)
#pragma once

#include <string>

namespace rami::coordinator {

std::string NewPublicJobId();

}  // namespace rami::coordinator
