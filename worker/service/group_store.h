// GroupStore: the rendezvous store this worker serves to its group's ranks when it is rank 0
// (StoreSet / StoreGet), bounded so a caller cannot fill the worker's memory: at most
// kMaxStoreKeys keys of at most kMaxStoreKeyBytes, values of at most kMaxStoreValueBytes
// (16 MiB in all). Each load of a group's rank 0 keeps only that group's keys
// ("<group_id>/..."), so the keys of earlier incarnations never pile up against the bound.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/collectives/rendezvous_store.h"

namespace rami::service {

// A group of 64 ranks needs ~70 keys (Gloo: one per rank and a few more; NCCL: one) of a few
// hundred bytes, values under 10 KiB (Gloo's address list of 64 ranks).
inline constexpr size_t kMaxStoreKeys = 256;
inline constexpr size_t kMaxStoreKeyBytes = 512;
inline constexpr size_t kMaxStoreValueBytes = 64 << 10;

class GroupStore final : public collectives::RendezvousStore {
 public:
  // INVALID_ARGUMENT for a key or value over its bound, RESOURCE_EXHAUSTED for a new key past
  // kMaxStoreKeys (replacing a key's value is always possible); each names the limit.
  absl::Status Set(const std::string& key, const std::string& value) override;
  // INVALID_ARGUMENT for more than kMaxStoreKeys keys or a key over its bound; else as
  // RendezvousStore::Get (UNAVAILABLE once closed).
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override;
  // A new incarnation of the group: drops every key outside "<group_id>/".
  void StartGroup(const std::string& group_id);
  // Wakes every waiting Get, which fails UNAVAILABLE, and so do later ones (a stopping worker).
  void Close();

 private:
  collectives::InMemoryRendezvousStore store_;  // the keys, within the bounds above
};

}  // namespace rami::service
