// CudaStepHost (worker/engine/cuda_step_host.h) against a device with a timeline: every call is
// queued on one "stream" and runs only when the host waits — the table deltas scattered into a
// replica, then each step reading its plan from the plan buffer it was launched from, its visible
// keys from the replica (kept list, window pages, flags masking keys older than W, as
// kernels/cuda/visible_keys.cuh does) and writing its decisions into the replica's flags (as
// KvWrite does). A step's sampled token is a hash of its input token, position and visible keys,
// so a step that ran on stale or early tables, or on a rewritten plan buffer, samples another
// token. For dms (W = 2, 3, 5), the window policy and dense, page sizes 1 and 4:
//  * RunDecodeSteps with overlap samples the same tokens as without, and leaves the same cache;
//  * with overlap, step i + 1 is packed before step i is waited for; without, after;
//  * no plan buffer is handed out again before the step launched from it has run;
//  * after a final Sync the host mirror equals the replica wherever the mirror knows the value.
#include "worker/engine/cuda_step_host.h"

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/kv/kv_cache.h"

namespace rami {
namespace {

using engine::CudaStepHost;
using engine::CudaStepLayout;
using engine::CudaStepPlan;
using engine::ForwardResult;
using engine::SampledToken;
using engine::SequenceChunk;
using engine::StepDevice;
using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::KvTablesDelta;
using kv::KvTablesHost;
using kv::SeqId;

constexpr int kLayers = 2, kHeads = 2, kDim = 4, kVocab = 1000;

uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class TimelineDevice final : public StepDevice {
 public:
  TimelineDevice(const CachePolicy& policy, int page_size)
      : policy_(policy), page_size_(page_size) {}

  absl::Status ApplyTables(const KvTablesDelta& delta) override {
    Op op;
    op.tables = delta;
    queue_.push_back(std::move(op));
    return absl::OkStatus();
  }
  absl::Status CopySlots(absl::Span<const kernels::KvCopyOp> ops,
                         absl::Span<const int32_t> bounds) override {
    (void)bounds;
    copies_ += static_cast<int64_t>(ops.size());
    return absl::OkStatus();
  }
  absl::StatusOr<void*> PlanBuffer(int index, size_t bytes) override {
    Buffer& b = buffers_[index];
    if (b.pending > 0) ++violations_;  // a launched step has not read it yet
    ++b.version;
    if (b.bytes.size() < bytes) b.bytes.resize(bytes);
    events_.push_back("plan " + std::to_string(planned_++));
    return b.bytes.data();
  }
  int GraphBatch() const override { return 8; }
  absl::Status Launch(absl::Span<const SequenceChunk> chunks, const CudaStepPlan& plan,
                      const CudaStepLayout& layout, int buffer) override {
    Op op;
    op.step = true;
    op.buffer = buffer;
    op.version = buffers_[buffer].version;
    op.layout = layout;
    op.num_tokens = plan.num_tokens;
    op.rows = static_cast<int>(plan.logit_tokens.size());
    for (const SequenceChunk& c : chunks) op.sample.push_back(c.sample.has_value());
    op.chunk_last = plan.chunk_first;
    for (size_t c = 0; c < chunks.size(); ++c) {
      op.chunk_last[c] += static_cast<int32_t>(chunks[c].tokens.size()) - 1;
    }
    ++buffers_[buffer].pending;
    events_.push_back("launch " + std::to_string(launched_++));
    queue_.push_back(std::move(op));
    return absl::OkStatus();
  }
  absl::StatusOr<ForwardResult> Wait(std::vector<uint8_t>* decisions) override {
    events_.push_back("wait " + std::to_string(waited_++));
    while (!queue_.empty()) {
      Op op = std::move(queue_.front());
      queue_.pop_front();
      if (!op.step) {
        replica_.Apply(op.tables);
        continue;
      }
      return RunStep(op, decisions);
    }
    return absl::FailedPreconditionError("wait without a launched step");
  }

  const KvTablesHost& replica() const { return replica_; }
  const std::vector<std::string>& events() const { return events_; }
  int violations() const { return violations_; }

 private:
  struct Buffer {
    std::vector<char> bytes;
    int64_t version = 0;
    int pending = 0;  // launched steps that have not run
  };
  struct Op {
    bool step = false;
    KvTablesDelta tables;
    int buffer = 0;
    int64_t version = 0;
    CudaStepLayout layout;
    int num_tokens = 0, rows = 0;
    std::vector<bool> sample;
    std::vector<int32_t> chunk_last;  // plan-order index of each chunk's last token
  };

  // Hash of the keys token `t` sees in `stream` (kept slots, then window positions not masked).
  uint64_t VisibleKeys(int32_t stream, int32_t pos) const {
    const KvTablesHost& r = replica_;
    uint64_t h = Mix(static_cast<uint64_t>(pos));
    const int32_t kept = r.kept_count[stream];
    for (int32_t j = 0; j < kept; ++j) {
      h = Mix(h ^
              static_cast<uint64_t>(r.page_table[r.kept_page_start[stream] + j / page_size_] * 64 +
                                    j % page_size_));
    }
    for (int32_t p = r.window_start[stream]; p <= pos; ++p) {
      const int32_t slot = p - r.window_base[stream];
      if (policy_.evicts() && pos - p > policy_.window &&
          r.flags[r.flag_start[stream] + slot * r.flag_stride] != 0) {
        continue;
      }
      h = Mix(h ^ static_cast<uint64_t>(
                      r.page_table[r.window_page_start[stream] + slot / page_size_] * 64 +
                      slot % page_size_ + 7));
    }
    return h;
  }

  absl::StatusOr<ForwardResult> RunStep(const Op& op, std::vector<uint8_t>* decisions) {
    Buffer& b = buffers_[op.buffer];
    --b.pending;
    if (b.version != op.version) ++violations_;  // rewritten after the launch
    const char* packed = b.bytes.data();
    const int T = op.num_tokens;
    std::vector<int32_t> tokens(T), positions(T), streams(static_cast<size_t>(kLayers) * T);
    std::memcpy(tokens.data(), packed + op.layout.tokens, 4 * T);
    std::memcpy(positions.data(), packed + op.layout.positions, 4 * T);
    std::memcpy(streams.data(), packed + op.layout.token_stream, 4 * streams.size());
    const bool dms = policy_.kind == CachePolicyKind::kDms;
    decisions->assign(dms ? static_cast<size_t>(kLayers) * T * kHeads : 0, 0);
    std::vector<uint64_t> seen(T, 0);
    for (int layer = 0; layer < kLayers; ++layer) {
      for (int t = 0; t < T; ++t) {
        const int32_t base = streams[static_cast<size_t>(layer) * T + t];
        if (base < 0) continue;  // padding
        for (int h = 0; h < kHeads; ++h) {
          const int32_t s = base + h;
          const uint8_t d =
              Mix(Mix(static_cast<uint64_t>(positions[t]) * 31 + tokens[t]) + layer * 7 + h) % 3 ==
              0;
          if (dms) {
            (*decisions)[(static_cast<size_t>(layer) * T + t) * kHeads + h] = d;
            // KvWrite: this token's decision flags the position before it.
            if (positions[t] > 0) {
              const int64_t slot = positions[t] - replica_.window_base[s] - 1;
              replica_.flags[replica_.flag_start[s] + slot * replica_.flag_stride] = d;
            }
          }
          seen[t] = Mix(seen[t] ^ VisibleKeys(s, positions[t]) ^ (layer * 131 + h));
        }
      }
    }
    ForwardResult result;
    result.vocab_size = kVocab;
    result.first_row.assign(op.sample.size(), -1);
    result.sampled.resize(op.sample.size());
    int rows = 0;
    for (size_t c = 0; c < op.sample.size(); ++c) {
      const int32_t t = op.chunk_last[c];
      if (op.sample[c]) {
        SampledToken token;
        token.token_id = static_cast<int32_t>(Mix(seen[t] ^ tokens[t]) % kVocab);
        result.sampled[c] = std::move(token);
      } else {
        result.first_row[c] = rows++;
      }
    }
    result.logits.assign(static_cast<size_t>(rows) * kVocab, 0.0f);
    return result;
  }

  const CachePolicy policy_;
  const int page_size_;
  std::deque<Op> queue_;
  Buffer buffers_[kPlanBuffers];
  KvTablesHost replica_;
  std::vector<std::string> events_;
  int64_t copies_ = 0;
  int planned_ = 0, launched_ = 0, waited_ = 0, violations_ = 0;
};

struct Case {
  CachePolicy policy;
  int page_size;
};

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  const CachePolicy& p = info.param.policy;
  std::string name = p.kind == CachePolicyKind::kDms      ? "dms_w" + std::to_string(p.window)
                     : p.kind == CachePolicyKind::kWindow ? std::string("window")
                                                          : std::string("dense");
  return name + "_page" + std::to_string(info.param.page_size);
}

// One cache, its host side and its device, with sequences prefilled by Run.
struct Rig {
  explicit Rig(const Case& c)
      : cache({.page_size = c.page_size, .num_pages = 20000, .allocate_storage = false}, kLayers,
              kHeads, kDim, c.policy),
        host(kLayers, kHeads, c.page_size, c.policy),
        device(c.policy, c.page_size) {
    host.Attach(cache);
  }

  // Sequences 1 … n of different lengths, prefilled in chunks (the last one sampled).
  void Prefill(int n, std::vector<int32_t>* first_tokens) {
    for (int i = 1; i <= n; ++i) {
      ASSERT_TRUE(cache.AddSequence(i).ok());
      const int length = 3 + 5 * i;
      for (int done = 0; done < length;) {
        const int count = std::min(6, length - done);
        SequenceChunk chunk;
        chunk.seq_id = i;
        chunk.tokens.assign(count, 10 + i);
        if (done + count == length) chunk.sample = engine::SampleRequest{};
        const std::pair<SeqId, int64_t> append[] = {{i, count}};
        ASSERT_TRUE(cache.ReserveAppend(append).ok());
        absl::StatusOr<ForwardResult> r = host.Run({&chunk, 1}, cache, device);
        ASSERT_TRUE(r.ok()) << r.status();
        if (chunk.sample.has_value()) first_tokens->push_back(r->sampled[0]->token_id);
        done += count;
      }
    }
  }

  KvCache cache;
  CudaStepHost host;
  TimelineDevice device;
};

class CudaStepHostTest : public ::testing::TestWithParam<Case> {};

TEST_P(CudaStepHostTest, OverlapSamplesWhatSequentialStepsSample) {
  constexpr int kSequences = 5, kSteps = 40;
  std::vector<std::vector<int32_t>> tokens[2];
  Rig runs[2] = {Rig(GetParam()), Rig(GetParam())};
  for (int overlap = 0; overlap < 2; ++overlap) {
    Rig& s = runs[overlap];
    std::vector<int32_t> first;
    ASSERT_NO_FATAL_FAILURE(s.Prefill(kSequences, &first));
    std::vector<SeqId> ids;
    for (int i = 1; i <= kSequences; ++i) ids.push_back(i);
    const int events_before = static_cast<int>(s.device.events().size());
    const absl::Status status =
        s.host.RunDecodeSteps(ids, first, kSteps, overlap == 1, s.cache, s.device,
                              [&](int step, const ForwardResult& result) {
                                EXPECT_EQ(step, static_cast<int>(tokens[overlap].size()));
                                std::vector<int32_t> sampled;
                                for (const auto& token : result.sampled)
                                  sampled.push_back(token->token_id);
                                tokens[overlap].push_back(sampled);
                              });
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(s.device.violations(), 0) << "a plan buffer was rewritten before its step ran";
    // Step k of the decode run is plan / launch / wait number (prefill steps) + k.
    const std::vector<std::string>& ev = s.device.events();
    auto at = [&](const std::string& what) {
      for (size_t i = events_before; i < ev.size(); ++i) {
        if (ev[i] == what) return static_cast<int>(i);
      }
      return -1;
    };
    int prefills = 0;
    for (int i = 0; i < events_before; ++i) prefills += ev[i].rfind("wait", 0) == 0 ? 1 : 0;
    for (int k = 0; k + 1 < kSteps; ++k) {
      const int plan_next = at("plan " + std::to_string(prefills + k + 1));
      const int wait_now = at("wait " + std::to_string(prefills + k));
      ASSERT_GE(plan_next, 0);
      ASSERT_GE(wait_now, 0);
      if (overlap == 1) {
        EXPECT_LT(plan_next, wait_now) << "step " << k + 1 << " was not prepared ahead";
      } else {
        EXPECT_GT(plan_next, wait_now) << "step " << k + 1;
      }
    }
  }
  ASSERT_EQ(tokens[0].size(), static_cast<size_t>(kSteps));
  EXPECT_EQ(tokens[0], tokens[1]);
  // The same cache: every sequence's streams and flags, and the accounting.
  for (SeqId id = 1; id <= kSequences; ++id) {
    EXPECT_EQ(runs[0].cache.Length(id), runs[1].cache.Length(id));
    const auto& a = *runs[0].cache.StreamsOf(id);
    const auto& b = *runs[1].cache.StreamsOf(id);
    const kv::SequenceWindows& wa = *runs[0].cache.WindowsOf(id);
    const kv::SequenceWindows& wb = *runs[1].cache.WindowsOf(id);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(wa.num_pages(), wb.num_pages());
    EXPECT_EQ(wa.base, wb.base);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].kept_pages, b[i].kept_pages) << "seq " << id << " stream " << i;
      EXPECT_EQ(a[i].kept, b[i].kept);
      for (int64_t j = 0; j < wa.num_pages(); ++j) {
        EXPECT_EQ(wa.pages.Row(j)[i], wb.pages.Row(j)[i]) << "seq " << id << " stream " << i;
      }
      const kv::ConstWindowFlags fa = runs[0].cache.FlagsOf(id, static_cast<int>(i));
      const kv::ConstWindowFlags fb = runs[1].cache.FlagsOf(id, static_cast<int>(i));
      ASSERT_EQ(fa.data == nullptr, fb.data == nullptr);
      if (fa.data == nullptr) continue;  // nothing is evicted: no flags
      const size_t slots = static_cast<size_t>(wa.num_pages() * runs[0].cache.pool().page_size());
      for (size_t j = 0; j < slots; ++j) {
        ASSERT_EQ(fa[j], fb[j]) << "seq " << id << " stream " << i << " slot " << j;
      }
    }
  }
  EXPECT_EQ(runs[0].cache.Stats().live_tokens, runs[1].cache.Stats().live_tokens);
  // After one more (empty) Sync the device holds what the mirror says.
  for (Rig& s : runs) {
    KvTablesDelta delta;
    std::vector<SeqId> ids;
    for (int i = 1; i <= kSequences; ++i) ids.push_back(i);
    kv::DeviceKvTables& tables = const_cast<kv::DeviceKvTables&>(s.host.tables());
    ASSERT_TRUE(tables.Sync(s.cache, ids, &delta).ok());
    KvTablesHost replica = s.device.replica();
    replica.Apply(delta);
    const KvTablesHost& m = tables.mirror();
    EXPECT_EQ(replica.page_table, m.page_table);
    EXPECT_EQ(replica.kept_count, m.kept_count);
    EXPECT_EQ(replica.window_start, m.window_start);
    ASSERT_EQ(replica.flags.size(), m.flags.size());
    for (size_t i = 0; i < m.flags.size(); ++i) {
      if (m.flags[i] == kv::DeviceKvTables::kUnknownFlag) continue;
      ASSERT_EQ(replica.flags[i], m.flags[i]) << "flag " << i;
    }
  }
}

TEST(CudaStepHost, OverlapNeedsAWindowOfTwoUnderDms) {
  Rig s(Case{CachePolicy::Dms(1), 4});
  std::vector<int32_t> first;
  ASSERT_NO_FATAL_FAILURE(s.Prefill(1, &first));
  const SeqId ids[] = {1};
  const absl::Status status =
      s.host.RunDecodeSteps(ids, first, 3, true, s.cache, s.device, [](int, const auto&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(s.cache.Length(1), 8) << "nothing ran";
}

INSTANTIATE_TEST_SUITE_P(
    Policies, CudaStepHostTest,
    ::testing::Values(Case{CachePolicy::Dms(2), 1}, Case{CachePolicy::Dms(3), 4},
                      Case{CachePolicy::Dms(5), 1}, Case{CachePolicy::Dms(5), 4},
                      Case{CachePolicy::Window(2, 6), 1}, Case{CachePolicy::Window(2, 6), 4},
                      Case{CachePolicy::Dense(), 1}, Case{CachePolicy::Dense(), 4}),
    Name);

}  // namespace
}  // namespace rami
