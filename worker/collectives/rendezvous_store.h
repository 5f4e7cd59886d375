// RendezvousStore: the key-value store through which the ranks of a collectives group find
// each other (each rank publishes its transport addresses, then waits for its peers').
// In production rank 0's worker serves it over gRPC (StoreSet/StoreGet in worker.proto), so
// ranks need no shared filesystem; InMemoryRendezvousStore serves threads of one process.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rami::collectives {

class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;
  // Stores `value` (arbitrary bytes) under `key`, replacing any earlier value.
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;
  // Waits until every key exists and returns their values in the order of `keys`;
  // DeadlineExceeded when some key is still missing after `timeout` (zero: look once).
  virtual absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                                       absl::Duration timeout) = 0;
};

// Thread-safe store in this process's memory (tests; ranks as threads; the worker's GroupStore
// keeps its keys here). Forgets a key only through RetainPrefix: group incarnations sharing one
// store must use distinct key prefixes.
class InMemoryRendezvousStore final : public RendezvousStore {
 public:
  // Wakes every waiting Get, which fails UNAVAILABLE, and so do later ones: a worker that is
  // stopping must not keep a StoreGet handler (and so its gRPC server) waiting for minutes.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    changed_.SignalAll();
  }

  absl::Status Set(const std::string& key, const std::string& value) override {
    return SetBounded(key, value, SIZE_MAX, "");
  }
  // Set, refusing a new key (RESOURCE_EXHAUSTED naming `bound`) once `max_keys` keys are held;
  // replacing a key's value is always possible.
  absl::Status SetBounded(const std::string& key, const std::string& value, size_t max_keys,
                          absl::string_view bound) {
    absl::MutexLock lock(&mu_);
    if (!values_.contains(key) && values_.size() >= max_keys) {
      return absl::ResourceExhaustedError(
          absl::StrCat("StoreSet: the store holds ", bound, " (", max_keys, ") keys; no new key"));
    }
    values_[key] = value;
    changed_.SignalAll();
    return absl::OkStatus();
  }
  // Drops every key that does not start with `prefix`.
  void RetainPrefix(const std::string& prefix) {
    absl::MutexLock lock(&mu_);
    for (auto it = values_.begin(); it != values_.end();) {
      it = it->first.starts_with(prefix) ? std::next(it) : values_.erase(it);
    }
  }

  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override {
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

 private:
  absl::Mutex mu_;
  absl::CondVar changed_;  // signalled on every Set
  std::unordered_map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rami::collectives
