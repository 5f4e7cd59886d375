// LoadShardRequest → ShardOptions (defaults, enums, rendezvous) and ShardInfo → response.
#include "worker/service/shard_proto.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "proto/worker_types.h"

namespace rami::service {

namespace v1 = worker::v1;

namespace {

absl::Status Named(const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("LoadShard: ", s.message()));
}

absl::StatusOr<engine::ShardOptions> Convert(const v1::LoadShardRequest& r) {
  engine::ShardOptions o;
  o.model_dir = r.model_dir();
  o.shard = {.rank = r.rank(), .world_size = r.world_size()};
  RAMI_ASSIGN_OR_RETURN(o.device, proto::DeviceFromProto(r.device()));
  RAMI_ASSIGN_OR_RETURN(o.dtype, proto::ComputeDTypeFromProto(r.dtype()));
  o.cache_policy = r.cache_policy();
  o.page_size = r.page_size() == 0 ? 16 : r.page_size();
  o.kv_cache_bytes = r.kv_cache_bytes();
  if (r.gpu_memory_utilization() != 0) o.gpu_memory_utilization = r.gpu_memory_utilization();
  if (r.max_step_tokens() != 0) o.limits.max_step_tokens = r.max_step_tokens();
  if (r.max_step_sequences() != 0) o.limits.max_step_sequences = r.max_step_sequences();
  o.cuda_graphs = !r.enforce_eager();
  if (r.collective_timeout_seconds() != 0) {
    const double s = r.collective_timeout_seconds();
    if (!(s > 0 && s <= 3600)) {  // also NaN; before the Duration conversion saturates
      return absl::InvalidArgumentError(
          absl::StrCat("collective_timeout_seconds: expected (0, 3600], found ", s));
    }
    o.collective_timeout = absl::Seconds(s);
  }
  if (o.shard.world_size > 1) {
    if (r.rendezvous().store_address().empty()) {
      return absl::InvalidArgumentError("rendezvous.store_address: required");
    }
    if (r.rendezvous().group_id().empty()) {
      return absl::InvalidArgumentError("rendezvous.group_id: required");
    }
  }
  o.group_id = r.rendezvous().group_id();
  if (!r.rendezvous().bind_host().empty()) o.bind_host = r.rendezvous().bind_host();
  RAMI_RETURN_IF_ERROR(o.Validate());
  return o;
}

}  // namespace

absl::StatusOr<engine::ShardOptions> ShardOptionsFromProto(const v1::LoadShardRequest& request) {
  absl::StatusOr<engine::ShardOptions> o = Convert(request);
  if (!o.ok()) return Named(o.status());
  return o;
}

void ShardInfoToProto(const engine::ShardInfo& info, v1::LoadShardResponse* response) {
  response->set_num_pages(info.num_pages);
  response->set_page_size(info.page_size);
  response->set_kv_cache_bytes(info.kv_cache_bytes);
  response->set_vocab_size(info.vocab_size);
  response->set_num_layers(info.num_layers);
  response->set_num_kv_heads(info.num_kv_heads);
  response->set_cache_policy(info.cache_policy);
  response->set_dms_window(info.dms_window);
  for (int id : info.eos_token_ids) response->add_eos_token_ids(id);
  response->set_dtype(proto::ComputeDTypeToProto(info.dtype));
  response->set_memory_plan(info.memory_plan);
}

}  // namespace rami::service
