// Fuzzes config.json parsing as Checkpoint::Open and the loaders do it: strict JSON
// (ParseJsonStrict), ParseModelConfig for whichever architecture the text names, then the
// per-rank sizes (ShardDims::Make) that follow from an accepted config.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "worker/checkpoint/config_parser.h"
#include "worker/checkpoint/safetensors.h"
#include "worker/checkpoint/shard_dims.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto json = rami::checkpoint::ParseJsonStrict(text, "config.json");
  if (!json.ok()) return 0;
  auto config = rami::checkpoint::ParseModelConfig(*json, "config.json");
  if (!config.ok()) return 0;
  for (int world : {1, 2, 8}) {
    for (int rank : {0, world - 1}) {
      (void)rami::checkpoint::ShardDims::Make(*config, {rank, world});
    }
  }
  return 0;
}
