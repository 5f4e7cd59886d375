// The worker protocol's typed fields and their plain C++ twins (base/device.h,
// base/sampling_params.h): one function per direction, used by the coordinator on one side of
// the wire and the worker service on the other.
#pragma once

#include "absl/status/statusor.h"
#include "base/device.h"
#include "base/sampling_params.h"
#include "rami/worker/v1/worker.pb.h"

namespace rami::proto {

worker::v1::Device DeviceToProto(const Device& device);
// InvalidArgument for an enum value this build does not know or a negative index.
absl::StatusOr<Device> DeviceFromProto(const worker::v1::Device& device);

worker::v1::ComputeDType ComputeDTypeToProto(ComputeDType dtype);
absl::StatusOr<ComputeDType> ComputeDTypeFromProto(worker::v1::ComputeDType dtype);

// Unset proto fields take SamplingParams' "off" values (top_p unset = 1). No range checks:
// ValidateSamplingParams is the one place for those.
worker::v1::SamplingParams SamplingToProto(const SamplingParams& params);
SamplingParams SamplingFromProto(const worker::v1::SamplingParams& proto);

}  // namespace rami::proto
