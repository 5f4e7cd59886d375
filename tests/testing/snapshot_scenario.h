// SnapshotScenario: the cold and warm runs of one prompt that the prefix-cache tests compare, on
// the CPU backend (tests/unit/engine_snapshot_test.cc, TP 1 and 2) and the CUDA one
// (tests/gpu/snapshot_gpu_test.cc). On one Engine:
//  * cold: root 10 prefilled in the cut's chunks, snapshot 100 taken in the step of the chunk
//    that ends at P, the root forked into branches 11–13 (greedy and two seeded samplers) in the
//    step of the last chunk, 12 decode steps, everything but the snapshot freed;
//  * warm (twice: roots 20 and 30): a root created with copy_of = 100 prefilling only the cold
//    chunks after P (none when P = L: a copy without tokens, forked in its own step), the same
//    forks and decodes; the second warm run frees the snapshot in its first decode step.
// The chunks after P carry prompt_logprobs, so the first token after P is scored from the
// snapshot's logits in the warm runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "worker/engine/engine.h"

namespace rami::testing {

inline constexpr kv::SeqId kSnapshotSeq = 100;

// Where the prompt is cut: the cold chunks [bounds[i], bounds[i + 1]) from 0 to the prompt's
// length, and P (one of the bounds, > 0) where the snapshot is taken.
struct SnapshotCut {
  std::string name;
  std::vector<int> bounds;
  int p = 0;
};

// One rank's outcomes: per step of the cold run and of the two warm runs.
struct SnapshotTrace {
  std::vector<engine::StepOutcome> cold, warm[2];
  kv::SequenceStats snapshot_before, snapshot_after;  // after the cold run, after copy 1
  int free_at_start = 0, free_at_end = 0;             // pool pages before and after it all
};

// Runs the scenario on `engine` (every rank of a group runs it alike); failed steps are test
// failures.
SnapshotTrace RunSnapshotScenario(engine::Engine& engine, const SnapshotCut& cut,
                                  const std::vector<int32_t>& prompt);

// How the warm runs are compared with the cold one: bit for bit on the CPU backend. `logprob`:
// the largest difference of a log-prob or a prompt score (0: bitwise).
struct SnapshotTolerance {
  double logprob = 0;
};

// Every warm run equals the cold run from the cold step of the chunk that starts at P: the same
// tokens (ids, indices, top ids), log-probs and prompt scores, and the same live tokens,
// decisions and decode page needs of the root and branches in every step; the snapshot
// unchanged by its copies; every page back in the pool.
void ExpectWarmEqualsCold(const SnapshotTrace& trace, const SnapshotCut& cut,
                          const SnapshotTolerance& tolerance, const std::string& where);

}  // namespace rami::testing
