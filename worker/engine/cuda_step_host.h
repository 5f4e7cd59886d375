// CudaStepHost: every piece of a CUDA step that runs on the host, in the order the CUDA backend
// runs it — the device page tables' delta (DeviceKvTables::Sync) and the host pool's slot copies
// (KvCopyBatches), the step's plan (PlanCudaStep, padded to its graph bucket) packed into a plan
// buffer, then, once the device has run it, the DMS decisions written into the host cache's flags
// and the step committed (or its reservation returned). Host-only: what touches the device goes
// through a StepDevice — the CUDA backend's copies and launches on its stream
// (worker/cuda/cuda_model.cc), or host memory (`rami-bench host-step`, tools/bench_host_step.h;
// the tests) — so that the host cost of a CUDA step is measured and tested on any machine with the
// same code the GPU runs.
//
// A step is Prepare → Launch → Finish. Run does the three in a row (the Engine's step).
// RunDecodeSteps runs decode steps back to back and, with overlap, prepares step N + 1 while the
// device runs step N (TensorRT-LLM's overlap scheduler, SGLang's zero-overhead one): step N is
// committed before its decisions arrive — a decode step's commit reads only flags fixed W steps
// earlier (W ≥ 2) — step N + 1 is reserved, synced and packed, and its input tokens, step N's
// samples, are written into its plan last, at its launch. The plan buffers alternate, so the
// buffer a step is packed into was last read by a step that has finished.
//
// Ownership: the backend owns one CudaStepHost per KV cache (MakeCache); it holds the host mirror
// of the device tables, the pool's copy log (KvPagePool::set_copy_log) and the sequences changed
// outside a forward pass. One thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/kv_copy.h"
#include "worker/engine/cuda_step_plan.h"
#include "worker/engine/forward_backend.h"
#include "worker/kv/device_kv_tables.h"
#include "worker/kv/kv_cache.h"

namespace rami::engine {

// What the host side of a CUDA step hands to the device. Per step, in this order: ApplyTables
// (when the delta writes anything or grows a table), CopySlots (when the log holds copies),
// PlanBuffer, Launch; later Wait. Everything the device does is in call order (one stream).
class StepDevice {
 public:
  static constexpr int kPlanBuffers = 2;

  virtual ~StepDevice() = default;
  // Brings the device tables in line: grow to the delta's sizes, then scatter its writes.
  virtual absl::Status ApplyTables(const kv::KvTablesDelta& delta) = 0;
  // Replays the pool's slot copies, launch i being ops [bounds[i], bounds[i + 1]).
  virtual absl::Status CopySlots(absl::Span<const kernels::KvCopyOp> ops,
                                 absl::Span<const int32_t> bounds) = 0;
  // Host memory of ≥ `bytes` for plan buffer `index` (< kPlanBuffers; pinned on a GPU), which
  // the device reads when the step launched from it runs. The caller never asks for a buffer
  // whose last step has not been waited for.
  virtual absl::StatusOr<void*> PlanBuffer(int index, size_t bytes) = 0;
  // Decode-only steps of up to this many tokens are padded to their graph bucket (DecodeBucket);
  // 0: no step is padded.
  virtual int GraphBatch() const = 0;
  // Enqueues the forward pass of `plan`, packed in plan buffer `buffer` at `layout`.
  virtual absl::Status Launch(absl::Span<const SequenceChunk> chunks, const CudaStepPlan& plan,
                              const CudaStepLayout& layout, int buffer) = 0;
  // Waits for the oldest launched step and returns its results (the backend's ForwardResult)
  // and, for a dms cache, its decisions [num_layers, plan.num_tokens, num_kv_heads] (plan order).
  virtual absl::StatusOr<ForwardResult> Wait(std::vector<uint8_t>* decisions) = 0;
};

// Host time per phase, summed over the steps since the last reset (microseconds).
struct StepHostTimes {
  double tables_us = 0;   // Sync: the page tables' delta
  double copies_us = 0;   // the copy log cut into launches
  double plan_us = 0;     // PlanCudaStep, padding, layout, packing
  double results_us = 0;  // the decisions into the host flags and the mirror
  double commit_us = 0;   // CommitAppend (or AbortAppend)
  double device_us = 0;   // inside StepDevice calls (not host work of the step)
  int64_t steps = 0;
};

// A step between Prepare and Finish.
struct PreparedStep {
  absl::Span<const SequenceChunk> chunks;  // the caller's, alive until Finish
  std::vector<int64_t> starts;             // [chunks] each sequence's length before the step
  CudaStepPlan plan;
  CudaStepLayout layout;
  int buffer = 0;          // the plan buffer it is packed in
  void* packed = nullptr;  // that buffer
  bool launched = false;
  bool committed = false;  // committed early (RunDecodeSteps with overlap)
};

class CudaStepHost {
 public:
  CudaStepHost(int num_layers, int num_kv_heads, int page_size, const kv::CachePolicy& policy);
  CudaStepHost(const CudaStepHost&) = delete;
  CudaStepHost& operator=(const CudaStepHost&) = delete;

  // The pool's slot copies are logged here from now on (KvPagePool::set_copy_log).
  void Attach(kv::KvCache& cache);
  // Sequences changed outside a forward pass (ForwardBackend::CacheChanged).
  void CacheChanged(absl::Span<const kv::SeqId> ids);

  // Runs a reserved step (ForwardBackend::RunReserved's contract): committed when the forward
  // pass succeeded, its reservation returned otherwise.
  absl::StatusOr<ForwardResult> Run(absl::Span<const SequenceChunk> chunks, kv::KvCache& cache,
                                    StepDevice& device);

  // `steps` decode steps of `ids` (each holding its input token in `tokens`), reserving each
  // step itself; `on_step(i, result)` sees each step's results in order (the next step's inputs
  // are the tokens it sampled: ForwardResult::sampled of every chunk). With `overlap` (dense,
  // window, or dms with W ≥ 2) step i + 1 is prepared while step i runs. Stops at the first
  // error, leaving every sequence committed up to its last finished step.
  absl::Status RunDecodeSteps(absl::Span<const kv::SeqId> ids, std::vector<int32_t> tokens,
                              int steps, bool overlap, kv::KvCache& cache, StepDevice& device,
                              const std::function<void(int, const ForwardResult&)>& on_step);
  // Whether RunDecodeSteps may overlap under this host's policy.
  bool CanOverlap() const;

  const kv::CachePolicy& policy() const { return policy_; }
  const kv::DeviceKvTables& tables() const { return tables_; }
  const StepHostTimes& times() const { return times_; }
  void ResetTimes() { times_ = {}; }

 private:
  // Syncs the tables, replays the copies and packs the plan of reserved `chunks` into the next
  // plan buffer (the input tokens too: RunDecodeSteps rewrites them at launch).
  absl::Status Prepare(absl::Span<const SequenceChunk> chunks, kv::KvCache& cache,
                       StepDevice& device, PreparedStep* step);
  absl::Status Launch(PreparedStep& step, StepDevice& device);
  // Commits the step before its decisions arrive (decode steps, W ≥ 2).
  void CommitEarly(PreparedStep& step, kv::KvCache& cache);
  // Commits every chunk of a step (`ok`; with the device's decisions if `decisions`) or trims
  // it. Promotions logged into an empty log are marked independent: a commit allocates no page,
  // so each writes a kept slot reserved for its own stream before the step and reads a window
  // slot — no op of the batch reads or writes a slot another one writes.
  void Commit(const PreparedStep& step, kv::KvCache& cache, bool ok, bool decisions);
  // Chunk c's decisions in decisions_ ([layers, plan tokens, KV heads]).
  const uint8_t* DecisionsOf(const PreparedStep& step, size_t c, int num_kv_heads) const;
  // Waits for the step, writes its decisions, commits it (unless committed early) or returns its
  // reservation.
  absl::StatusOr<ForwardResult> Finish(PreparedStep& step, kv::KvCache& cache, StepDevice& device);

  kv::CachePolicy policy_;
  kv::DeviceKvTables tables_;
  std::vector<kernels::KvCopyOp> copy_log_;  // the host pool's copies since the last step
  // copy_log_[0, commit_copies_) are one step's commit promotions (Commit): independent.
  size_t commit_copies_ = 0;
  std::vector<kv::SeqId> touched_;  // to Sync before the next step (may repeat)
  kv::KvTablesDelta delta_;         // reused: its vectors keep their capacity
  std::vector<uint8_t> decisions_;
  int next_buffer_ = 0;
  StepHostTimes times_;
};

}  // namespace rami::engine
