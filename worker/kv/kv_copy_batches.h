// KvCopyBatches: cuts a step's logged KV slot copies (KvPagePool::set_copy_log: promotions at
// commit, fork tails) into launches of KvCopyCuda whose ops are independent — no op reads or
// writes a slot that another op of the same launch writes — so the device may run each launch's
// ops in any order and still get the host's sequential result. Host-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kv_copy.h"

namespace rami::kv {

// Launch boundaries: launch i covers ops [bounds[i], bounds[i + 1]); empty for no ops. Greedy
// in log order: a new launch starts at the first op that conflicts with the current one.
// `independent`: the caller knows ops [0, independent) conflict with none of each other (one
// step's commit promotions: see CudaStepHost), so they are not checked against each other — a
// log of nothing else is one launch, without hashing.
std::vector<int32_t> KvCopyBatches(const std::vector<kernels::KvCopyOp>& ops, int page_size,
                                   size_t independent = 0);

}  // namespace rami::kv
