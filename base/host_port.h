// The host of a gRPC address, "host:port" or "[v6]:port" (an address without a port is all
// host): what the worker port's loopback check and the collectives' bind address read.
#pragma once

#include "absl/strings/string_view.h"

namespace rami {

inline absl::string_view HostOf(absl::string_view address) {
  if (!address.empty() && address[0] == '[') {
    const size_t end = address.find(']');
    return end == absl::string_view::npos ? address : address.substr(1, end - 1);
  }
  const size_t colon = address.rfind(':');
  return colon == absl::string_view::npos ? address : address.substr(0, colon);
}

}  // namespace rami
