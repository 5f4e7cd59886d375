// DecodeGraphPolicy: when a device backend runs a decode step eagerly, captures it as a CUDA graph
// or replays the graph it has (worker/cuda/decode_graphs.h launches what this decides) — host-only
// bookkeeping, so every rule is tested without a GPU.
//
// Per key (batch bucket, decode splits): the first step runs eagerly (it warms up cuBLASLt's
// plans and lazily loaded kernels, which must not happen during a capture); the second is
// captured and replayed; later steps replay, or capture again when a pointer the graph baked in
// moved (a scratch buffer or a device table grew). A capture that fails makes the key eager for
// good.
//
// Tensor parallelism: keys and recaptures are rank-local (decode splits follow each rank's own
// KV heads' lengths; tables grow per rank), but a failure must not leave ranks on different
// paths: every graph-eligible step (decode-only steps: the same steps on every rank) ends with
// an agreement — the ranks learn whether any of them failed a capture in this step — and then
// each rank's key of this step is made eager on every rank, its fresh graph discarded, and the
// step runs eagerly everywhere.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace rami::engine {

struct DecodeGraphStats {
  int64_t eager = 0;     // steps run without a graph (first of a key, or a failed capture)
  int64_t captures = 0;  // graphs captured and instantiated (incl. recaptures)
  int64_t replays = 0;   // steps run as a graph launch (incl. right after a capture)
  int64_t failed = 0;    // captures that failed here, or on another rank (their key is eager)
};

class DecodeGraphPolicy {
 public:
  using Key = std::pair<int, int>;  // (batch bucket, decode splits)

  enum class Action {
    kEager,    // launch the step's kernels one by one
    kCapture,  // capture the step (then Agree, then Launch or run eagerly)
    kReplay,   // launch the key's graph
  };

  // The step of `key` whose graph would read `pointers`. kReplay only when a graph exists whose
  // pointers are these; a graph whose pointers moved is dropped (Dropped() says so) and
  // captured again.
  Action Begin(Key key, const std::vector<const void*>& pointers);
  // After kCapture: whether this rank's capture and instantiation succeeded.
  void Captured(bool ok);
  // After every Begin (whatever its action), with whether any rank's capture of this step
  // failed (the agreement's result): what to launch. kEager discards a fresh capture
  // (Dropped() is set) and makes the key eager for good.
  Action Agree(bool any_failed);

  // A graph this rank must destroy now: after Begin, the key's old graph (its pointers moved);
  // after Agree, the key's graph the agreement ended.
  bool Dropped() const { return dropped_; }
  // Whether this step's capture failed here (what the rank contributes to the agreement).
  bool failed_here() const { return failed_here_; }
  const DecodeGraphStats& stats() const { return stats_; }

 private:
  struct Entry {
    int seen = 0;                       // steps of this key so far
    bool eager_only = false;            // a capture failed (here or on another rank)
    bool has_graph = false;             // a graph is instantiated
    std::vector<const void*> pointers;  // the graph's, at capture
  };

  std::map<Key, Entry> entries_;
  Key key_{};
  Action action_ = Action::kEager;
  bool captured_ok_ = false;
  bool failed_here_ = false;
  bool dropped_ = false;
  std::vector<const void*> pointers_;
  DecodeGraphStats stats_;
};

}  // namespace rami::engine
