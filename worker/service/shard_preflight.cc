// PreflightShard: Checkpoint::Open (maps the files, reads their headers) and ParseModelConfig.
#include "worker/service/shard_preflight.h"

#include "base/status_macros.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/config_parser.h"

namespace rami::service {

absl::Status PreflightShard(const engine::ShardOptions& options) {
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<checkpoint::Checkpoint> checkpoint,
                        checkpoint::Checkpoint::Open(options.model_dir));
  return checkpoint::ParseModelConfig(checkpoint->config(), options.model_dir + "/config.json")
      .status();
}

}  // namespace rami::service
