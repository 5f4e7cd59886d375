// NcclCollectives: the unique-id rendezvous, a non-blocking communicator, the collectives (fp32,
// and typed for the CUDA forward pass) on the compute stream, and the watchdog that aborts the
// communicator when one hangs. The only file of the tree that includes nccl.h.
#include "worker/collectives/nccl_collectives.h"

#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "kernels/cuda/device.h"
#include "worker/collectives/nccl_unique_id.h"

namespace rami::collectives {
namespace {

static_assert(sizeof(ncclUniqueId) == kNcclUniqueIdBytes,
              "kNcclUniqueIdBytes must match this nccl.h's NCCL_UNIQUE_ID_BYTES");

// How often the watchdog looks at the oldest collective, and how long Synchronize and the
// enqueue/creation loops sleep between polls. Finishing is detected within these; timeouts are
// seconds, so the watchdog's period only needs to be small next to them.
constexpr absl::Duration kWatchdogPeriod = absl::Milliseconds(1);
constexpr absl::Duration kWaitPoll = absl::Microseconds(20);

std::string NcclErrorText(ncclComm* comm, ncclResult_t result) {
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  return absl::StrCat(ncclGetErrorString(result), " (", static_cast<int>(result), ")",
                      last != nullptr && last[0] != '\0' ? absl::StrCat(": ", last) : "");
}

std::string Where(const NcclCollectivesOptions& o) {
  return absl::StrCat("on rank ", o.rank, " of ", o.world_size, " (group '", o.group_id,
                      "', device ", o.device, ")");
}

// Waits while a non-blocking communicator's state is ncclInProgress (NCCL asks that nothing
// else touches it meanwhile); returns the final state, or ncclInProgress at `deadline`.
ncclResult_t AwaitCommState(ncclComm* comm, absl::Time deadline) {
  while (true) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
    if (query != ncclSuccess) return query;
    if (state != ncclInProgress || absl::Now() >= deadline) return state;
    absl::SleepFor(kWaitPoll);
  }
}

// NCCL's element type of a DeviceDType (InvalidArgument for a value this switch lacks).
absl::StatusOr<ncclDataType_t> NcclType(kernels::DeviceDType dtype, const char* collective,
                                        const NcclCollectivesOptions& o) {
  switch (dtype) {
    case kernels::DeviceDType::kF32:
      return ncclFloat32;
    case kernels::DeviceDType::kBF16:
      return ncclBfloat16;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "NCCL ", collective, " ", Where(o), ": unknown element type ", static_cast<int>(dtype)));
}

absl::StatusOr<std::string> NewUniqueId() {
  ncclUniqueId id;
  const ncclResult_t result = ncclGetUniqueId(&id);
  if (result != ncclSuccess) {
    return absl::UnavailableError(
        absl::StrCat("ncclGetUniqueId: ", NcclErrorText(nullptr, result)));
  }
  return std::string(id.internal, sizeof(id.internal));
}

}  // namespace

absl::StatusOr<std::unique_ptr<NcclCollectives>> NcclCollectives::Create(
    const NcclCollectivesOptions& o, RendezvousStore* store) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("NcclCollectives: rank ", o.rank, " is not in a world of ", o.world_size));
  }
  if (o.timeout < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NcclCollectives: timeout must be at least 1ms, got ", absl::FormatDuration(o.timeout)));
  }
  if (o.world_size > 1 && (store == nullptr || o.group_id.empty())) {
    return absl::InvalidArgumentError(
        "NcclCollectives: a world of several ranks needs a store and a group id");
  }
  const int devices = cuda::DeviceCount();
  if (o.device < 0 || o.device >= devices) {
    return absl::FailedPreconditionError(absl::StrCat(
        "NcclCollectives: device ", o.device, " does not exist (", devices, " CUDA devices)"));
  }
  if (const cudaError_t e = cudaSetDevice(o.device); e != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("NcclCollectives: cudaSetDevice(", o.device, "): ", cudaGetErrorString(e)));
  }

  // 1. The unique id: rank 0's, through the store (a world of one keeps its own).
  std::string id_bytes;
  if (o.world_size == 1) {
    RAMI_ASSIGN_OR_RETURN(id_bytes, NewUniqueId());
  } else {
    RAMI_ASSIGN_OR_RETURN(id_bytes,
                          ExchangeNcclUniqueId(o.rank, *store, o.group_id, o.timeout, NewUniqueId));
  }
  ncclUniqueId id;
  std::memcpy(id.internal, id_bytes.data(), sizeof(id.internal));

  // 2. A non-blocking communicator, so that creation (which waits for every peer) and every
  // enqueue return at once and this code bounds them; a blocking one could hang forever.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.commName = o.group_id.c_str();
  const absl::Time deadline = absl::Now() + o.timeout;
  ncclComm* comm = nullptr;
  ncclResult_t result = ncclCommInitRankConfig(&comm, o.world_size, id, o.rank, &config);
  if ((result == ncclSuccess || result == ncclInProgress) && comm != nullptr) {
    result = AwaitCommState(comm, deadline);
  }
  if (result != ncclSuccess) {
    const std::string text = NcclErrorText(comm, result);
    if (comm != nullptr) ncclCommAbort(comm);
    if (result == ncclInProgress) {
      return absl::DeadlineExceededError(
          absl::StrCat("NCCL communicator creation ", Where(o), " timed out after ",
                       absl::FormatDuration(o.timeout), " (a peer never joined?)"));
    }
    return absl::UnavailableError(
        absl::StrCat("NCCL communicator creation ", Where(o), " failed: ", text));
  }
  return std::unique_ptr<NcclCollectives>(new NcclCollectives(o, comm));
}

NcclCollectives::NcclCollectives(const NcclCollectivesOptions& options, ncclComm* comm)
    : options_(options), comm_(comm), last_retired_(absl::Now()) {
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

NcclCollectives::~NcclCollectives() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    work_.SignalAll();
  }
  watchdog_.join();
  // Collectives in flight finish (or time out and break the object) before the teardown.
  Synchronize().IgnoreError();
  AbortIfRequested();  // the watchdog is gone: abort here if it broke on the way
  bool broken = false;
  std::vector<cudaEvent_t> events;
  {
    absl::MutexLock lock(&mu_);
    broken = !broken_.ok();
    events = std::move(free_events_);
    for (const Pending& p : pending_) events.push_back(p.done);
    pending_.clear();
  }
  if (!broken) {
    // Finalize flushes NCCL's own work; on a non-blocking communicator it may be in progress.
    ncclResult_t result = ncclCommFinalize(comm_);
    if (result == ncclSuccess || result == ncclInProgress) {
      result = AwaitCommState(comm_, absl::Now() + options_.timeout);
    }
    if (result == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
  }
  for (cudaEvent_t event : events) cudaEventDestroy(event);
}

absl::Status NcclCollectives::broken() const {
  absl::MutexLock lock(&mu_);
  return broken_;
}

absl::Status NcclCollectives::TakeBrokenStatusLocked() {
  if (cause_reported_) return broken_;
  cause_reported_ = true;
  return cause_;
}

absl::Status NcclCollectives::CheckCall(const char* collective, const void* data, size_t count) {
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return TakeBrokenStatusLocked();
  }
  if (data == nullptr && count > 0) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL ", collective, " ", Where(options_),
                                                   ": null buffer of ", count, " elements"));
  }
  return absl::OkStatus();
}

cudaEvent_t NcclCollectives::TakeEventLocked() {
  if (!free_events_.empty()) {
    cudaEvent_t event = free_events_.back();
    free_events_.pop_back();
    return event;
  }
  cudaEvent_t event = nullptr;
  if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) return nullptr;
  return event;
}

absl::Status NcclCollectives::Launch(const char* collective, absl::FunctionRef<int()> issue) {
  absl::Status failure;
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return TakeBrokenStatusLocked();
    const absl::Time start = absl::Now();
    ncclResult_t result = static_cast<ncclResult_t>(issue());
    if (result == ncclInProgress) result = AwaitCommState(comm_, start + options_.timeout);
    if (result == ncclInProgress) {
      failure = absl::DeadlineExceededError(absl::StrCat("NCCL ", collective, " ", Where(options_),
                                                         ": enqueue did not complete in ",
                                                         absl::FormatDuration(options_.timeout)));
    } else if (result != ncclSuccess) {
      failure = absl::UnavailableError(absl::StrCat("NCCL ", collective, " ", Where(options_),
                                                    " failed: ", NcclErrorText(comm_, result)));
    } else {
      // Watch it: an event right after it on the stream. Not during graph capture, where the
      // event would only be recorded at replay (and querying it is illegal).
      cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
      cudaError_t e = cudaStreamIsCapturing(options_.stream, &capture);
      if (e == cudaSuccess && capture == cudaStreamCaptureStatusNone) {
        cudaEvent_t done = TakeEventLocked();
        e = done == nullptr ? cudaErrorMemoryAllocation : cudaEventRecord(done, options_.stream);
        if (e == cudaSuccess) {
          pending_.push_back({collective, done, start});
          work_.Signal();
        } else if (done != nullptr) {
          free_events_.push_back(done);
        }
      }
      if (e != cudaSuccess) {
        failure = absl::InternalError(absl::StrCat("NCCL ", collective, " ", Where(options_),
                                                   ": cannot watch it: ", cudaGetErrorString(e)));
      }
    }
  }
  if (failure.ok()) return absl::OkStatus();
  Break(failure);
  absl::MutexLock lock(&mu_);
  return TakeBrokenStatusLocked();
}

absl::Status NcclCollectives::Poll() {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return absl::OkStatus();  // already handled by whoever broke it
  const absl::Time now = absl::Now();
  // Retire finished collectives, oldest first: the stream completes them in order.
  while (!pending_.empty()) {
    const Pending& head = pending_.front();
    const cudaError_t e = cudaEventQuery(head.done);
    if (e == cudaErrorNotReady) break;
    if (e != cudaSuccess) {
      return absl::InternalError(absl::StrCat("NCCL ", head.collective, " ", Where(options_),
                                              ": the stream failed: ", cudaGetErrorString(e)));
    }
    free_events_.push_back(head.done);
    pending_.pop_front();
    last_retired_ = now;
  }
  if (pending_.empty()) return absl::OkStatus();
  // A peer that died or a network failure shows up here while our kernel waits for it.
  ncclResult_t state = ncclSuccess;
  const ncclResult_t query = ncclCommGetAsyncError(comm_, &state);
  if (query != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
    const ncclResult_t bad = query != ncclSuccess ? query : state;
    return absl::UnavailableError(absl::StrCat("NCCL ", pending_.front().collective, " ",
                                               Where(options_),
                                               " failed: ", NcclErrorText(comm_, bad)));
  }
  // The oldest collective's clock starts when it was enqueued or when its predecessor finished,
  // whichever is later, so work queued ahead of it on the stream does not count against it.
  const Pending& head = pending_.front();
  const absl::Duration waited = now - std::max(head.enqueued, last_retired_);
  if (waited > options_.timeout) {
    return absl::DeadlineExceededError(
        absl::StrCat("NCCL ", head.collective, " ", Where(options_), " did not finish within ",
                     absl::FormatDuration(options_.timeout), " (waited ",
                     absl::FormatDuration(waited), "); aborting the communicator"));
  }
  return absl::OkStatus();
}

void NcclCollectives::Break(const absl::Status& cause) {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return;  // someone else broke it first
  cause_ = cause;
  broken_ = absl::FailedPreconditionError(absl::StrCat(
      "NCCL collectives broken by an earlier failure (recreate the group): ", cause.message()));
  for (const Pending& p : pending_) orphaned_events_.push_back(p.done);
  pending_.clear();
  abort_requested_ = true;
  work_.SignalAll();
}

void NcclCollectives::AbortIfRequested() {
  std::vector<cudaEvent_t> events;
  {
    absl::MutexLock lock(&mu_);
    if (!abort_requested_) return;
    abort_requested_ = false;
    events = std::move(orphaned_events_);
    orphaned_events_.clear();
  }
  // Outside the lock: nobody touches comm_ once broken_ is set (enqueues and polls check it
  // under mu_ first). It also ends NCCL kernels that wait for a peer, so the stream drains.
  ncclCommAbort(comm_);
  // Legal while the event is still pending: its resources go once it completes.
  for (cudaEvent_t event : events) cudaEventDestroy(event);
}

absl::Status NcclCollectives::Synchronize() {
  while (true) {
    const absl::Status failure = Poll();
    if (!failure.ok()) Break(failure);
    {
      absl::MutexLock lock(&mu_);
      if (!broken_.ok()) return TakeBrokenStatusLocked();
      if (pending_.empty()) return absl::OkStatus();
    }
    absl::SleepFor(kWaitPoll);
  }
}

void NcclCollectives::WatchdogLoop() {
  cudaSetDevice(options_.device);  // this thread's event queries and the abort
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && !abort_requested_ && (pending_.empty() || !broken_.ok())) {
        work_.Wait(&mu_);
      }
      if (stop_) return;  // the destructor does any abort still requested
      if (!abort_requested_) {
        work_.WaitWithTimeout(&mu_, kWatchdogPeriod);  // let the GPU work; wakes on a signal
        if (stop_) return;
      }
    }
    const absl::Status failure = Poll();
    if (!failure.ok()) Break(failure);
    AbortIfRequested();
  }
}

absl::Status NcclCollectives::AllReduceSum(float* data, size_t count) {
  return AllReduceSumDevice(data, count, kernels::DeviceDType::kF32);
}

absl::Status NcclCollectives::AllGather(const float* in, size_t count, float* out) {
  return AllGatherDevice(in, count, out, kernels::DeviceDType::kF32);
}

absl::Status NcclCollectives::AllReduceSumDevice(void* data, size_t count,
                                                 kernels::DeviceDType dtype) {
  RAMI_RETURN_IF_ERROR(CheckCall("AllReduceSum", data, count));
  RAMI_ASSIGN_OR_RETURN(const ncclDataType_t type, NcclType(dtype, "AllReduceSum", options_));
  if (count == 0) return absl::OkStatus();
  return Launch("AllReduceSum", [&] {
    return static_cast<int>(
        ncclAllReduce(data, data, count, type, ncclSum, comm_, options_.stream));
  });
}

absl::Status NcclCollectives::AllGatherDevice(const void* in, size_t count, void* out,
                                              kernels::DeviceDType dtype) {
  RAMI_RETURN_IF_ERROR(CheckCall("AllGather", in, count));
  RAMI_RETURN_IF_ERROR(CheckCall("AllGather", out, count));
  RAMI_ASSIGN_OR_RETURN(const ncclDataType_t type, NcclType(dtype, "AllGather", options_));
  if (count == 0) return absl::OkStatus();
  return Launch("AllGather", [&] {
    return static_cast<int>(ncclAllGather(in, out, count, type, comm_, options_.stream));
  });
}

absl::Status NcclCollectives::Broadcast(float* data, size_t count, int root) {
  RAMI_RETURN_IF_ERROR(CheckCall("Broadcast", data, count));
  if (root < 0 || root >= options_.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL Broadcast ", Where(options_), ": root ",
                                                   root, " is not in a world of ",
                                                   options_.world_size));
  }
  if (count == 0) return absl::OkStatus();
  return Launch("Broadcast", [&] {
    return static_cast<int>(
        ncclBroadcast(data, data, count, ncclFloat32, root, comm_, options_.stream));
  });
}

}  // namespace rami::collectives
