// Field-by-field conversions between the worker protocol and base/'s plain types.
#include "proto/worker_types.h"

#include "absl/strings/str_cat.h"

namespace rami::proto {

namespace v1 = worker::v1;

v1::Device DeviceToProto(const Device& device) {
  v1::Device proto;
  switch (device.kind) {
    case DeviceKind::kCpu:
      proto.set_kind(v1::DEVICE_KIND_CPU);
      break;
    case DeviceKind::kCuda:
      proto.set_kind(v1::DEVICE_KIND_CUDA);
      proto.set_index(device.index);
      break;
  }
  return proto;
}

absl::StatusOr<Device> DeviceFromProto(const v1::Device& proto) {
  switch (proto.kind()) {
    case v1::DEVICE_KIND_UNSPECIFIED:
    case v1::DEVICE_KIND_CPU:
      return Device{};
    case v1::DEVICE_KIND_CUDA:
      if (proto.index() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("device.index: expected >= 0, found ", proto.index()));
      }
      return Device{.kind = DeviceKind::kCuda, .index = proto.index()};
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("device.kind: unknown value ", static_cast<int>(proto.kind())));
  }
}

v1::ComputeDType ComputeDTypeToProto(ComputeDType dtype) {
  switch (dtype) {
    case ComputeDType::kDefault:
      return v1::COMPUTE_DTYPE_UNSPECIFIED;
    case ComputeDType::kFp32:
      return v1::COMPUTE_DTYPE_FP32;
    case ComputeDType::kBf16:
      return v1::COMPUTE_DTYPE_BF16;
  }
  return v1::COMPUTE_DTYPE_UNSPECIFIED;
}

absl::StatusOr<ComputeDType> ComputeDTypeFromProto(v1::ComputeDType dtype) {
  switch (dtype) {
    case v1::COMPUTE_DTYPE_UNSPECIFIED:
      return ComputeDType::kDefault;
    case v1::COMPUTE_DTYPE_FP32:
      return ComputeDType::kFp32;
    case v1::COMPUTE_DTYPE_BF16:
      return ComputeDType::kBf16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype: unknown value ", static_cast<int>(dtype)));
  }
}

v1::SamplingParams SamplingToProto(const SamplingParams& params) {
  v1::SamplingParams proto;
  proto.set_temperature(params.temperature);
  proto.set_top_k(params.top_k);
  proto.set_top_p(params.top_p);
  proto.set_min_p(params.min_p);
  proto.set_seed(params.seed);
  proto.set_logprobs(params.logprobs);
  return proto;
}

SamplingParams SamplingFromProto(const v1::SamplingParams& proto) {
  return {.temperature = proto.temperature(),
          .top_k = proto.top_k(),
          .top_p = proto.has_top_p() ? proto.top_p() : 1.0f,
          .min_p = proto.min_p(),
          .seed = proto.seed(),
          .logprobs = proto.logprobs()};
}

}  // namespace rami::proto
