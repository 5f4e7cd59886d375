// NcclCollectives: the GPU implementation of Collectives, over one NCCL communicator per rank,
// on the rank's compute stream. The unique id goes through the control plane's
// RendezvousStore (worker/collectives/nccl_unique_id.h); a watchdog thread bounds every collective.
// Only nccl_collectives.cc includes nccl.h (so the rest of the worker builds without NCCL).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kernels/cuda/device_dtype.h"
#include "worker/collectives/collectives.h"
#include "worker/collectives/rendezvous_store.h"

struct ncclComm;  // nccl.h's opaque communicator (ncclComm_t is ncclComm*)

namespace rami::collectives {

struct NcclCollectivesOptions {
  int rank = 0;
  int world_size = 1;
  int device = 0;        // CUDA ordinal of this rank's GPU
  std::string group_id;  // unique per group incarnation; names the id's store key
  // The compute stream (borrowed, must outlive the object): every collective is enqueued on
  // it, so it is ordered with the forward pass's kernels without any host synchronization.
  cudaStream_t stream = nullptr;
  // Bounds the id exchange, the communicator's creation, and each collective (see below).
  absl::Duration timeout = absl::Seconds(30);
};

// Buffers are DEVICE memory on `device` (unlike Gloo's host buffers), and the calls are
// asynchronous like kernel launches: AllReduceSum/AllGather/Broadcast validate, enqueue on the
// compute stream and return; the result is ready in stream order. Synchronize() waits (on the
// host) for every collective issued so far and returns the first failure. Every rank issues the
// same collectives in the same order, from one thread (the worker's compute thread).
//
// Timeouts: a watchdog thread polls the oldest unfinished collective (cudaEventQuery on an event
// recorded right after it, and ncclCommGetAsyncError). A collective that has not finished
// `timeout` after it was enqueued or after its predecessor finished, whichever is later, or an
// asynchronous NCCL error (a peer died), breaks the object: the watchdog thread aborts the
// communicator (ncclCommAbort, which also ends NCCL kernels stuck waiting for a peer), and the
// next call — a collective or Synchronize — returns the cause (DeadlineExceeded for a timeout,
// Unavailable for an NCCL error); every call after that fails fast with FailedPrecondition.
// Recovery means a new group (new Create with a new group id). Collectives enqueued while the
// stream is being captured into a CUDA graph are not watched (their replays are outside this
// object's view).
class NcclCollectives final : public Collectives {
 public:
  // Rank 0 creates the NCCL unique id and Sets it in `store` (borrowed, used only during
  // Create) under NcclUniqueIdKey(group_id); the other ranks wait for it there. Then every rank
  // joins a non-blocking communicator, waiting at most `timeout` for its peers. A world of one
  // needs no store (it still goes through NCCL, so one GPU exercises this code).
  // FailedPrecondition when there is no CUDA device.
  static absl::StatusOr<std::unique_ptr<NcclCollectives>> Create(
      const NcclCollectivesOptions& options, RendezvousStore* store);
  // Waits for the collectives in flight (bounded by the timeout), then finalizes and destroys
  // the communicator; aborts it instead when that fails.
  ~NcclCollectives() override;

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  // In place, float32 sum (AllReduceSumDevice with kF32).
  absl::Status AllReduceSum(float* data, size_t count) override;
  // `in` may be its own slot of `out` (in == out + rank * count, NCCL's in-place form); no
  // other overlap. AllGatherDevice with kF32.
  absl::Status AllGather(const float* in, size_t count, float* out) override;
  absl::Status Broadcast(float* data, size_t count, int root) override;
  absl::Status Synchronize() override;

  // Typed forms for the CUDA forward pass's tensor parallelism (bf16 activations), outside the
  // Collectives interface (Gloo's host buffers have no bf16). `count` is in elements of
  // `dtype` (kBF16 → ncclBfloat16, kF32 → ncclFloat32); same rules, errors, ordering and
  // watchdog as the float forms above, which call these. A bf16 sum is rounded to bf16 by
  // NCCL at each step of its reduction, so with several ranks it may differ from the
  // fp32-accumulated sum by a few bf16 ulps; every rank gets the same bits.
  //
  // In place: data [count] = the sum over the ranks of their data.
  absl::Status AllReduceSumDevice(void* data, size_t count, kernels::DeviceDType dtype);
  // out [world_size, count] = every rank's `in` [count], in rank order; `in` may be its own
  // slot of `out` as in AllGather.
  absl::Status AllGatherDevice(const void* in, size_t count, void* out, kernels::DeviceDType dtype);

  // OK while usable; after a failure, the FailedPrecondition every later call returns.
  absl::Status broken() const;

 private:
  // One watched collective: `done` is recorded on the stream right after it.
  struct Pending {
    const char* collective;
    cudaEvent_t done;
    absl::Time enqueued;
  };

  NcclCollectives(const NcclCollectivesOptions& options, ncclComm* comm);

  // Argument checks shared by the collectives (null buffers); the broken status when broken.
  absl::Status CheckCall(const char* collective, const void* data, size_t count);
  // Enqueues one NCCL call (`issue` returns its ncclResult_t) on the stream and registers it
  // with the watchdog.
  absl::Status Launch(const char* collective, absl::FunctionRef<int()> issue);
  // One watchdog pass: retires finished collectives and returns a non-OK status when the oldest
  // one is over its deadline or NCCL reports an asynchronous error.
  absl::Status Poll();
  // Marks the object broken with `cause` (first caller wins) and hands the communicator's abort
  // to the watchdog thread, so the caller returns at once: ncclCommAbort can wait for the
  // stream, and the caller may be what the stream waits for.
  void Break(const absl::Status& cause);
  // Aborts the communicator and frees the events of the collectives it took down, if Break
  // asked for it and nobody did it yet. Called without mu_ held.
  void AbortIfRequested();
  // The status a call returns once broken: the cause the first time, then broken_.
  absl::Status TakeBrokenStatusLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WatchdogLoop();
  cudaEvent_t TakeEventLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const NcclCollectivesOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar work_;  // signalled when a collective is enqueued or on stop
  // The communicator; enqueues and polls hold mu_. Aborted (and never used again) once
  // broken_ is set, by the thread that set it.
  ncclComm* const comm_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);  // oldest first (stream order)
  std::vector<cudaEvent_t> free_events_ ABSL_GUARDED_BY(mu_);
  // Events of collectives pending when it broke; destroyed after the abort.
  std::vector<cudaEvent_t> orphaned_events_ ABSL_GUARDED_BY(mu_);
  absl::Time last_retired_ ABSL_GUARDED_BY(mu_);  // when the watchdog saw the last one finish
  absl::Status cause_ ABSL_GUARDED_BY(mu_);       // why it broke
  absl::Status broken_ ABSL_GUARDED_BY(mu_);      // FailedPrecondition once broken
  bool cause_reported_ ABSL_GUARDED_BY(mu_) = false;
  bool abort_requested_ ABSL_GUARDED_BY(mu_) = false;  // Break happened, abort not yet done
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace rami::collectives
