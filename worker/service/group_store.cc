// GroupStore: bounds checked here, keys kept (and waited for) in an InMemoryRendezvousStore.
#include "worker/service/group_store.h"

#include "absl/strings/str_cat.h"

namespace rami::service {

namespace {

absl::Status CheckKey(const std::string& key, absl::string_view what) {
  if (key.size() > kMaxStoreKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": key of ", key.size(),
                                                   " bytes exceeds kMaxStoreKeyBytes (",
                                                   kMaxStoreKeyBytes, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status GroupStore::Set(const std::string& key, const std::string& value) {
  if (absl::Status s = CheckKey(key, "StoreSet"); !s.ok()) return s;
  if (value.size() > kMaxStoreValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("StoreSet: value of ", value.size(),
                                                   " bytes exceeds kMaxStoreValueBytes (",
                                                   kMaxStoreValueBytes, ")"));
  }
  return store_.SetBounded(key, value, kMaxStoreKeys, "kMaxStoreKeys");
}

absl::StatusOr<std::vector<std::string>> GroupStore::Get(const std::vector<std::string>& keys,
                                                         absl::Duration timeout) {
  if (keys.size() > kMaxStoreKeys) {
    return absl::InvalidArgumentError(absl::StrCat(
        "StoreGet: ", keys.size(), " keys exceed kMaxStoreKeys (", kMaxStoreKeys, ")"));
  }
  for (const std::string& key : keys) {
    if (absl::Status s = CheckKey(key, "StoreGet"); !s.ok()) return s;
  }
  return store_.Get(keys, timeout);
}

void GroupStore::StartGroup(const std::string& group_id) {
  store_.RetainPrefix(absl::StrCat(group_id, "/"));
}

void GroupStore::Close() { store_.Close(); }

}  // namespace rami::service
