// LoadShard: the one wiring path from "rank r of this checkpoint, on this device" to a running
// Engine — read the config and this rank's weights, build the backend (CPU or CUDA), pick the
// cache policy, size the KV pool, join the group's collectives. The worker service, rami-generate
// and the tests that need a loaded shard all come through here; nothing else assembles a model,
// a cache and an Engine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/device.h"
#include "worker/checkpoint/shard_dims.h"
#include "worker/collectives/rendezvous_store.h"
#include "worker/engine/engine.h"
#include "worker/engine/step_limits.h"

namespace rami::engine {

// What to load, validated by Validate() (every message names the field and its limit).
struct ShardOptions {
  std::string model_dir;        // a Hugging Face checkpoint: config.json + *.safetensors
  checkpoint::ShardSpec shard;  // this rank of a world of world_size (1…64)
  Device device;                // cpu, or cuda:<n> (a build with the CUDA backend)
  ComputeDType dtype = ComputeDType::kDefault;  // resolved per device (ResolveComputeDType)
  std::string cache_policy;    // "", "dense", "dms", "window:<sinks>:<recent>"; "" = the
                               // checkpoint's own (kv::CachePolicy::Parse)
  int page_size = 16;          // tokens per KV page, 1…4096
  int64_t kv_cache_bytes = 0;  // CPU: the KV pool's budget (1…2^31 pages of it)
  // CUDA: the share of the device's total memory the shard may use (vLLM's
  // gpu_memory_utilization); the KV pool gets what the weights and the largest step leave
  // (engine/device_memory_plan.h).
  double gpu_memory_utilization = 0.9;
  // The largest step: the Engine refuses a bigger plan; the CUDA backend reserves for it.
  StepLimits limits;
  bool cuda_graphs = true;  // CUDA: decode steps as CUDA graphs per batch bucket
  absl::Duration collective_timeout = absl::Seconds(30);  // (0, 1 h]
  // world_size > 1: the group's identity (prefixes its keys in the rendezvous store) and the
  // address peers reach this rank's transport at.
  std::string group_id;
  std::string bind_host = "127.0.0.1";

  absl::Status Validate() const;
};

// What a loaded shard is, for the caller to report (LoadShardResponse).
struct ShardInfo {
  int64_t num_pages = 0;
  int page_size = 0;
  int64_t kv_cache_bytes = 0;                // bytes reserved for the pool
  ComputeDType dtype = ComputeDType::kFp32;  // resolved
  int vocab_size = 0;
  int num_layers = 0;
  int num_kv_heads = 0;  // this rank's
  std::string cache_policy;
  int dms_window = 0;  // W of the policy (0 for dense)
  std::vector<int> eos_token_ids;
  std::string memory_plan;  // CUDA: the device memory plan, one line (empty on the CPU)
  // The process's anonymous resident memory after the load (/proc/self/status RssAnon; -1
  // where unknown): on CUDA no host copy of the weights stays behind.
  int64_t host_anon_rss_bytes = -1;
};

struct LoadedShard {
  std::unique_ptr<Engine> engine;
  ShardInfo info;
};

// Loads rank options.shard.rank's shard. `store` is the group's rendezvous (used only when
// world_size > 1: Gloo's addresses, and NCCL's unique id under "<group_id>/device"); a world of
// one may pass any store. Errors: InvalidArgument for bad options, a bad checkpoint or a policy
// the checkpoint cannot take; Unimplemented for a device or world this build lacks (CUDA, Gloo);
// DeadlineExceeded / Unavailable when the group does not form within collective_timeout.
absl::StatusOr<LoadedShard> LoadShard(const ShardOptions& options,
                                      collectives::RendezvousStore& store);

}  // namespace rami::engine
