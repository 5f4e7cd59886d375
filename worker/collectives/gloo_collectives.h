// GlooCollectives: the CPU implementation of Collectives, over a full mesh of Gloo TCP pairs
// found through a RendezvousStore (no shared filesystem needed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/collectives/collectives.h"
#include "worker/collectives/rendezvous_store.h"

namespace gloo {
class Context;
}  // namespace gloo

namespace rami::collectives {

// Every rank of the group calls the same collectives in the same order, from one thread at a
// time (the worker's compute thread): the object is not thread-safe.
//
// Failures: every collective is bounded by `timeout` (Gloo's own timeout, set on the context
// and on each call). A timeout gives DeadlineExceeded, a lost connection Unavailable; either
// way the message names the collective, the rank and the timeout. The first failure breaks the
// object for good: its connections are closed (so peers blocked in the same collective fail
// at once instead of waiting out their timeout) and every later call returns FailedPrecondition
// without touching the network. Recovery means a new group: a new Create with a new key prefix.
//
// Side effect: the first Create with world_size > 1 sets SIGPIPE to SIG_IGN if it still has its
// default action, because Gloo writes with writev(2) and a peer that has died would otherwise
// kill this process instead of failing the collective.
class GlooCollectives final : public Collectives {
 public:
  // Rendezvous of `world_size` ranks: each publishes its pairs' addresses in `store` (borrowed;
  // used only during Create) under keys "<key_prefix>/...", reads its peers', and connects the
  // mesh. `key_prefix` must be unique per group incarnation when several share a store: stale
  // addresses of a dead incarnation fail the connect. `bind_host` is the address peers reach
  // this rank at (127.0.0.1 on loopback). All ranks must call Create within `timeout` of each
  // other; a rank that never shows up gives DeadlineExceeded after `timeout`. A peer that
  // published its addresses and then died or hung fails the connect: at once (Unavailable) on
  // the side of each pair that dials, after Gloo's connect timeout of 5 x `timeout`
  // (DeadlineExceeded) on the side that listens (Gloo picks the sides by address order). A
  // world of one needs no store and does no communication.
  static absl::StatusOr<std::unique_ptr<GlooCollectives>> Create(int rank, int world_size,
                                                                 RendezvousStore* store,
                                                                 const std::string& key_prefix,
                                                                 const std::string& bind_host,
                                                                 absl::Duration timeout);
  ~GlooCollectives() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  absl::Status AllReduceSum(float* data, size_t count) override;
  // `in` may alias its own slot of `out` (in == out + rank * count); no other overlap.
  absl::Status AllGather(const float* in, size_t count, float* out) override;
  absl::Status Broadcast(float* data, size_t count, int root) override;

  // OK while usable; after a failure, the FailedPrecondition every call returns.
  const absl::Status& broken() const { return broken_; }

 private:
  GlooCollectives(int rank, int world_size, absl::Duration timeout,
                  std::shared_ptr<gloo::Context> context);

  // Common argument checks; also returns broken_ when broken.
  absl::Status CheckCall(const char* collective, const void* data, size_t count) const;
  // Runs `body(tag)` (one Gloo collective with a fresh tag), turning any exception it throws
  // into a status and breaking the object. On failure Run closes the connections before it
  // returns (the pairs' locks make that wait for any read in progress), so no late message can
  // land in the caller's buffers once the call has returned; the caller keeps the Gloo options
  // that describe those buffers alive until then.
  absl::Status Run(const char* collective, absl::FunctionRef<void(uint32_t tag)> body);

  const int rank_;
  const int world_size_;
  const absl::Duration timeout_;
  // The connected mesh; null for a world of one. Owns the TCP device and its event-loop thread.
  std::shared_ptr<gloo::Context> context_;
  // Tag of the next collective. All ranks issue the same sequence, so each collective gets
  // its own Gloo slot on every rank; wraps after 2^32 calls, long after those have completed.
  uint32_t next_tag_ = 0;
  absl::Status broken_;
};

}  // namespace rami::collectives
