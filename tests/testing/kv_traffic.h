// KvTraffic: random KV-cache traffic for the backend tests — each step may add, fork or free a
// sequence, then gives the live ones prefill chunks (first or later ones) or decode tokens and
// reserves them in the cache. The sequences a step touches (added, forked, freed, appended) are
// what a backend must sync into its device tables.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/forward_backend.h"
#include "worker/kv_cache.h"

namespace rami::testing {

class KvTraffic {
 public:
  explicit KvTraffic(uint32_t seed) : rng_(seed) {}

  // Plans the next step on `cache` and reserves its appends. Empty: no chunk this step (the
  // caller skips it; nothing was reserved).
  absl::StatusOr<std::vector<SequenceChunk>> Next(KvCache& cache);
  // Commits the appends of the chunks Next returned (after the step ran).
  void Commit(KvCache& cache, const std::vector<SequenceChunk>& chunks);
  // The sequences touched since the last call, in order (repeats possible).
  std::vector<SeqId> TakeTouched() { return std::exchange(touched_, {}); }
  // The generator, for the caller's own draws (activations, decisions).
  std::mt19937& rng() { return rng_; }
  int Percent() { return percent_(rng_); }

 private:
  std::mt19937 rng_;
  std::uniform_int_distribution<int> percent_{0, 99};
  std::uniform_int_distribution<int> chunk_{2, 12};
  std::vector<SeqId> live_, touched_;
  SeqId next_ = 1;
};

}  // namespace rami::testing
