// NCCL unique-id exchange through the RendezvousStore (see the header).
#include "worker/collectives/nccl_unique_id.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rami::collectives {
namespace {

absl::Status CheckSize(const std::string& id, const std::string& key, absl::string_view from) {
  if (id.size() == kNcclUniqueIdBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("NCCL unique id under '", key, "' from ", from,
                                                 " has ", id.size(), " bytes, expected ",
                                                 kNcclUniqueIdBytes));
}

}  // namespace

std::string NcclUniqueIdKey(absl::string_view group_id) {
  return absl::StrCat(group_id, "/nccl/unique_id");
}

absl::StatusOr<std::string> ExchangeNcclUniqueId(
    int rank, RendezvousStore& store, absl::string_view group_id, absl::Duration timeout,
    absl::FunctionRef<absl::StatusOr<std::string>()> create_id) {
  if (group_id.empty()) {
    return absl::InvalidArgumentError("NCCL unique id exchange: empty group id");
  }
  if (rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL unique id exchange: negative rank ", rank));
  }
  const std::string key = NcclUniqueIdKey(group_id);
  if (rank == 0) {
    RAMI_ASSIGN_OR_RETURN(std::string id, create_id());
    RAMI_RETURN_IF_ERROR(CheckSize(id, key, "rank 0's ncclGetUniqueId"));
    RAMI_RETURN_IF_ERROR(store.Set(key, id));
    return id;
  }
  absl::StatusOr<std::vector<std::string>> values = store.Get({key}, timeout);
  if (!values.ok()) {
    return absl::Status(values.status().code(),
                        absl::StrCat("NCCL unique id exchange on rank ", rank,
                                     " (waiting for rank 0): ", values.status().message()));
  }
  std::string id = std::move(values->front());
  RAMI_RETURN_IF_ERROR(CheckSize(id, key, "the rendezvous store"));
  return id;
}

}  // namespace rami::collectives
