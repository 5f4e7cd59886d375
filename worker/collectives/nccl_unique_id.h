// NCCL unique-id exchange: the host-only half of NcclCollectives' rendezvous. Rank 0 creates
// the id and publishes it in the RendezvousStore (rank 0's worker serves it over the control
// plane); every other rank waits for it there. The id is opaque bytes here, so this file needs
// no nccl.h and is tested on machines without CUDA.
#pragma once

#include <cstddef>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "worker/collectives/rendezvous_store.h"

namespace rami::collectives {

// sizeof(ncclUniqueId) (NCCL_UNIQUE_ID_BYTES); nccl_collectives.cc static_asserts the match.
inline constexpr size_t kNcclUniqueIdBytes = 128;

// The store key of a group's id: "<group_id>/nccl/unique_id". Gloo's keys of the same group live
// under "<group_id>/<gloo key>" and never contain "nccl/", so the two cannot collide.
std::string NcclUniqueIdKey(absl::string_view group_id);

// Returns the group's id (exactly kNcclUniqueIdBytes bytes) on every rank.
// Rank 0 calls `create_id` (ncclGetUniqueId in production) and Sets the bytes under
// NcclUniqueIdKey(group_id); other ranks Get that key, waiting at most `timeout`
// (DeadlineExceeded naming the key when rank 0 never publishes). A value of the wrong size,
// from the store or from create_id, is InvalidArgument naming the key and both sizes.
// `group_id` must be non-empty and unique per group incarnation: the store never forgets a key,
// and a stale id would make the ranks of a new group join a dead one.
absl::StatusOr<std::string> ExchangeNcclUniqueId(
    int rank, RendezvousStore& store, absl::string_view group_id, absl::Duration timeout,
    absl::FunctionRef<absl::StatusOr<std::string>()> create_id);

}  // namespace rami::collectives
