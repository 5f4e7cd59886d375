// GroupStore: bounded keys and values, waits on a condition variable.
#include "worker/service/group_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

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
  absl::MutexLock lock(&mu_);
  if (!values_.contains(key) && values_.size() >= kMaxStoreKeys) {
    return absl::ResourceExhaustedError(absl::StrCat("StoreSet: the store holds kMaxStoreKeys (",
                                                     kMaxStoreKeys, ") keys; no new key"));
  }
  values_[key] = value;
  changed_.SignalAll();
  return absl::OkStatus();
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
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (true) {
    if (closed_) {
      return absl::UnavailableError("rendezvous store: closed (the worker is stopping)");
    }
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      if (!values_.contains(key)) missing.push_back(key);
    }
    if (missing.empty()) break;
    // Checked after the keys, so a Set that lands right at the deadline still counts.
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("rendezvous store: keys [", absl::StrJoin(missing, ", "),
                       "] still missing after ", absl::FormatDuration(timeout)));
    }
    changed_.WaitWithDeadline(&mu_, deadline);
  }
  std::vector<std::string> values;
  values.reserve(keys.size());
  for (const std::string& key : keys) values.push_back(values_.at(key));
  return values;
}

void GroupStore::StartGroup(const std::string& group_id) {
  const std::string prefix = absl::StrCat(group_id, "/");
  absl::MutexLock lock(&mu_);
  for (auto it = values_.begin(); it != values_.end();) {
    it = absl::StartsWith(it->first, prefix) ? std::next(it) : values_.erase(it);
  }
}

void GroupStore::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  changed_.SignalAll();
}

}  // namespace rami::service
