// The one place where absl::Status and grpc::Status meet (errors convert to gRPC codes in one function). The codes share their
// numeric values (both follow google.rpc.Code).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace rami {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace rami
