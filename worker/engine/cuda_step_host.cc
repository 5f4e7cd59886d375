// The host side of a CUDA step; see cuda_step_host.h.
#include "worker/engine/cuda_step_host.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/kv/kv_copy_batches.h"

namespace rami::engine {

using kv::KvCache;
using kv::SeqId;

namespace {

using Clock = std::chrono::steady_clock;

// Adds the microseconds since `*mark` to *total and moves the mark to now.
void Lap(Clock::time_point* mark, double* total) {
  const Clock::time_point now = Clock::now();
  *total += std::chrono::duration<double, std::micro>(now - *mark).count();
  *mark = now;
}

}  // namespace

CudaStepHost::CudaStepHost(int num_layers, int num_kv_heads, int page_size,
                           const kv::CachePolicy& policy)
    : policy_(policy), tables_(num_layers, num_kv_heads, page_size, policy) {}

void CudaStepHost::Attach(KvCache& cache) { cache.pool().set_copy_log(&copy_log_); }

void CudaStepHost::CacheChanged(absl::Span<const SeqId> ids) {
  touched_.insert(touched_.end(), ids.begin(), ids.end());
}

bool CudaStepHost::CanOverlap() const {
  return policy_.kind != kv::CachePolicyKind::kDms || policy_.window >= 2;
}

absl::StatusOr<ForwardResult> CudaStepHost::Run(absl::Span<const SequenceChunk> chunks,
                                                KvCache& cache, StepDevice& device) {
  PreparedStep step;
  absl::Status status = Prepare(chunks, cache, device, &step);
  if (status.ok()) status = Launch(step, device);
  if (!status.ok()) {  // nothing ran: the reservations go back
    for (const SequenceChunk& chunk : chunks) {
      cache.AbortAppend(chunk.seq_id);
      touched_.push_back(chunk.seq_id);
    }
    return status;
  }
  return Finish(step, cache, device);
}

absl::Status CudaStepHost::Prepare(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                   StepDevice& device, PreparedStep* step) {
  Clock::time_point mark = Clock::now();
  step->chunks = chunks;
  step->starts.clear();
  step->launched = step->committed = false;
  for (const SequenceChunk& chunk : chunks) {
    step->starts.push_back(cache.Length(chunk.seq_id));
    touched_.push_back(chunk.seq_id);
  }
  // Page tables: the sequences changed since the last step, as a delta. Refused
  // (ResourceExhausted) before anything changes when the tables would outgrow their int32
  // offsets: the step fails, touched_ stays for the next Sync.
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  RAMI_RETURN_IF_ERROR(tables_.Sync(cache, touched_, &delta_));
  touched_.clear();
  Lap(&mark, &times_.tables_us);
  absl::Status status = device.ApplyTables(delta_);
  Lap(&mark, &times_.device_us);
  RAMI_RETURN_IF_ERROR(status);
  // The host bookkeeping's slot copies (last commit's promotions, forks), in independent
  // launches; the device has taken them when CopySlots returns.
  if (!copy_log_.empty()) {
    const std::vector<int32_t> bounds =
        kv::KvCopyBatches(copy_log_, tables_.page_size(), commit_copies_);
    Lap(&mark, &times_.copies_us);
    status = device.CopySlots(copy_log_, bounds);
    Lap(&mark, &times_.device_us);
    RAMI_RETURN_IF_ERROR(status);
    copy_log_.clear();
    commit_copies_ = 0;
  }

  // The step's metadata: planned once (a decode step padded to its graph bucket), packed, one
  // copy. The plan buffers alternate: this one's last step has been waited for.
  step->plan = PlanCudaStep(chunks, cache, tables_);
  CudaStepPlan& plan = step->plan;
  const int bucket =
      plan.num_decode == plan.num_tokens ? DecodeBucket(plan.num_tokens, device.GraphBatch()) : 0;
  if (bucket > 0) PadDecodePlan(bucket, &plan);
  step->layout = LayoutOf(plan);
  step->buffer = next_buffer_;
  next_buffer_ = (next_buffer_ + 1) % StepDevice::kPlanBuffers;
  Lap(&mark, &times_.plan_us);
  absl::StatusOr<void*> buffer = device.PlanBuffer(step->buffer, step->layout.bytes);
  Lap(&mark, &times_.device_us);
  RAMI_RETURN_IF_ERROR(buffer.status());
  step->packed = *buffer;
  PackCudaStep(plan, step->layout, step->packed);
  Lap(&mark, &times_.plan_us);
  return absl::OkStatus();
}

absl::Status CudaStepHost::Launch(PreparedStep& step, StepDevice& device) {
  for (size_t c = 0; c < step.chunks.size(); ++c) {
    tables_.LaunchFlags(step.chunks[c].seq_id, step.starts[c],
                        static_cast<int64_t>(step.chunks[c].tokens.size()));
  }
  Clock::time_point mark = Clock::now();
  absl::Status status = device.Launch(step.chunks, step.plan, step.layout, step.buffer);
  Lap(&mark, &times_.device_us);
  step.launched = status.ok();
  return status;
}

void CudaStepHost::CommitEarly(PreparedStep& step, KvCache& cache) {
  Clock::time_point mark = Clock::now();
  Commit(step, cache, /*ok=*/true, /*decisions=*/false);
  step.committed = true;
  Lap(&mark, &times_.commit_us);
}

const uint8_t* CudaStepHost::DecisionsOf(const PreparedStep& step, size_t c,
                                         int num_kv_heads) const {
  return decisions_.data() + static_cast<size_t>(step.plan.chunk_first[c]) * num_kv_heads;
}

void CudaStepHost::Commit(const PreparedStep& step, KvCache& cache, bool ok, bool decisions) {
  const bool fresh_log = copy_log_.empty();
  const size_t layer_stride = static_cast<size_t>(step.plan.num_tokens) * cache.num_kv_heads();
  for (size_t c = 0; c < step.chunks.size(); ++c) {
    const SeqId id = step.chunks[c].seq_id;
    if (ok) {
      cache.CommitAppend(id, static_cast<int64_t>(step.chunks[c].tokens.size()),
                         decisions ? DecisionsOf(step, c, cache.num_kv_heads()) : nullptr,
                         layer_stride);
    } else {
      cache.AbortAppend(id);
    }
    touched_.push_back(id);  // committed or trimmed: resync before the next step
  }
  if (fresh_log) commit_copies_ = copy_log_.size();
}

absl::StatusOr<ForwardResult> CudaStepHost::Finish(PreparedStep& step, KvCache& cache,
                                                   StepDevice& device) {
  Clock::time_point mark = Clock::now();
  absl::StatusOr<ForwardResult> result = device.Wait(&decisions_);
  Lap(&mark, &times_.device_us);
  const absl::Span<const SequenceChunk> chunks = step.chunks;
  if (!result.ok()) {
    // The device may have written the step's flags: the mirror no longer knows them, so the
    // next Sync rewrites them from the host's (the pending flags as they were).
    for (size_t c = 0; c < chunks.size(); ++c) {
      tables_.ExpectDeviceFlags(chunks[c].seq_id, step.starts[c],
                                static_cast<int64_t>(chunks[c].tokens.size()));
    }
  }
  // The device's decisions become the host's flags (token t's α flags position t − 1), so that
  // CommitAppend promotes and evicts as the device's attention saw it (written by the commit's
  // own pass unless the step was committed early), and the mirror's, so that they are not
  // uploaded again.
  const bool dms = result.ok() && policy_.kind == kv::CachePolicyKind::kDms;
  const size_t layer_stride = static_cast<size_t>(step.plan.num_tokens) * cache.num_kv_heads();
  for (size_t c = 0; dms && c < chunks.size(); ++c) {
    const int64_t count = static_cast<int64_t>(chunks[c].tokens.size());
    const uint8_t* decisions = DecisionsOf(step, c, cache.num_kv_heads());
    tables_.RecordDeviceFlags(chunks[c].seq_id, step.starts[c], count, decisions, layer_stride);
    if (step.committed) {
      cache.SetDecisions(chunks[c].seq_id, step.starts[c], count, decisions, layer_stride);
    }
  }
  Lap(&mark, &times_.results_us);
  if (!step.committed) {
    Commit(step, cache, result.ok(), dms);
    Lap(&mark, &times_.commit_us);
  }
  ++times_.steps;
  return result;
}

absl::Status CudaStepHost::RunDecodeSteps(
    absl::Span<const SeqId> ids, std::vector<int32_t> tokens, int steps, bool overlap,
    KvCache& cache, StepDevice& device,
    const std::function<void(int, const ForwardResult&)>& on_step) {
  if (overlap && !CanOverlap()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "overlapped decode steps need W ≥ 2 under dms (the step between masks by the flags in "
        "flight); the cache's W is ",
        policy_.window));
  }
  if (tokens.size() != ids.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ids.size(), " sequences with ", tokens.size(), " input tokens"));
  }
  PreparedStep ring[2];
  std::vector<SequenceChunk> inputs[2];  // ring[k]'s chunks
  // Reserves one decode token per sequence and prepares step ring[k].
  auto prepare = [&](int k) -> absl::Status {
    std::vector<SequenceChunk>& chunks = inputs[k];
    chunks.resize(ids.size());
    std::vector<std::pair<SeqId, int64_t>> appends;
    for (size_t i = 0; i < ids.size(); ++i) {
      chunks[i].seq_id = ids[i];
      chunks[i].tokens = {tokens[i]};
      chunks[i].sample = SampleRequest{};
      appends.emplace_back(ids[i], 1);
    }
    RAMI_RETURN_IF_ERROR(cache.ReserveAppend(appends));
    const absl::Status status = Prepare(chunks, cache, device, &ring[k]);
    if (!status.ok()) {
      for (SeqId id : ids) cache.AbortAppend(id);
    }
    return status;
  };
  // The step's sampled tokens become the next inputs.
  auto take_tokens = [&](const ForwardResult& result) -> absl::Status {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i >= result.sampled.size() || !result.sampled[i].has_value()) {
        return absl::FailedPreconditionError(
            "decode steps need the device to sample (CudaModelOptions::device_sampling)");
      }
      tokens[i] = result.sampled[i]->token_id;
    }
    return absl::OkStatus();
  };
  // A prepared step that will not run returns its reservation.
  auto abandon = [&](const absl::Status& status) {
    for (SeqId id : ids) {
      cache.AbortAppend(id);
      touched_.push_back(id);
    }
    return status;
  };
  // Launches a prepared step, or abandons it.
  auto launch = [&](PreparedStep& step) {
    const absl::Status status = Launch(step, device);
    return status.ok() ? status : abandon(status);
  };
  if (steps <= 0) return absl::OkStatus();
  RAMI_RETURN_IF_ERROR(prepare(0));
  RAMI_RETURN_IF_ERROR(launch(ring[0]));
  for (int i = 0; i < steps; ++i) {
    PreparedStep& now = ring[i % 2];
    PreparedStep& next = ring[(i + 1) % 2];
    absl::Status ahead = absl::CancelledError("not prepared");  // the next step, while this runs
    const bool more = i + 1 < steps;
    if (more && overlap) {
      CommitEarly(now, cache);
      ahead = prepare((i + 1) % 2);
    }
    absl::StatusOr<ForwardResult> result = Finish(now, cache, device);
    absl::Status status = result.status();
    if (status.ok()) status = take_tokens(*result);
    if (!status.ok()) return ahead.ok() ? abandon(status) : status;
    if (more && overlap) RAMI_RETURN_IF_ERROR(ahead);
    on_step(i, *result);
    if (!more) break;
    if (!overlap) {
      RAMI_RETURN_IF_ERROR(prepare((i + 1) % 2));
    } else {
      // The inputs arrive last: written into the prepared plan (and its packed copy) now.
      for (size_t c = 0; c < next.chunks.size(); ++c) {
        const int32_t at = next.plan.chunk_first[c];
        inputs[(i + 1) % 2][c].tokens[0] = tokens[c];
        next.plan.tokens[at] = tokens[c];
        std::memcpy(static_cast<char*>(next.packed) + next.layout.tokens + 4 * size_t(at),
                    &tokens[c], 4);
      }
    }
    RAMI_RETURN_IF_ERROR(launch(next));
  }
  return absl::OkStatus();
}

}  // namespace rami::engine
