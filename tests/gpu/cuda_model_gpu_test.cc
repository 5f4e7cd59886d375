// The CUDA forward pass (worker/cuda/cuda_model.h) end to end against Hugging Face
// transformers: the goldens of tests/golden with the kernels' head sizes — llama3_hd128 (llama3
// rope scaling, head_dim 128, GQA group 4, bf16 file), qwen2_hd64 (q/k/v biases, tied head) and
// qwen3_dms_hd64 (q/k norms, borrowed-neuron DMS with W = 8, 72–84 % of the tokens evicted).
// All cases of a golden in one batch (GoldenBatch): each step feeds every case its next ≤ 8
// prompt tokens (every row's logits) or, once its prompt is in, one decode token — so prompts
// prefill next to the other cases' decode steps.
//  * fp32: the golden's greedy tokens reproduced from the device's own logits, every logits row
//    within kGpuGoldenTol of the golden's, and (DMS) the device's decisions equal to the
//    golden's, every stream's live count equal to the CPU backend's (run on the same steps)
//    after every step and to the golden's after the prompt and at the end. Without a device the
//    same driver and checks run on the CPU backend, so they are exercised on every machine;
//  * bf16, teacher-forced: the golden's tokens are fed in, and (DMS) after every step the
//    golden's decisions replace the device's in the cache before they act
//    (GoldenBatch::ExchangeDecisions); cosine ≥ 0.999 of every logits row with the golden's,
//    live counts equal to the golden's, and the device's own decisions agree with the golden's
//    on ≥ 99 % of (token, layer, head). Without a device the teacher-forced driver runs on the
//    CPU backend in fp32: the golden within 1e-4 and every own decision equal, and with every
//    decision forced to "keep" every stream holds the whole sequence (the exchange acts).
// The DeepSeek goldens (deepseek_v2, _v2_greedy, _v3, _v3_fp8, _v3_dms: MLA with latent rows of
// 32 + 8 values and 4 heads, MoE with 8 experts, dense first layers, YaRN, a DMS-MLA adapter
// with W = 8 and one decision per (token, layer)) run through the same driver and checks; on
// the device they take cuda_model_mla.cc's path (eager steps, every token through the MLA
// decode kernel, MoE routing on the host).
// Plus a random-weight Qwen3 widened to hidden 256 and head_dim 64 against the CPU backend:
// plain q/k norms (no golden has them at head_dim 64), a wider hidden, longer prompts.
#include "worker/cpu/model.h"
#include "worker/cuda/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/golden/golden_files.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/compare.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/checkpoint/checkpoint.h"

namespace rami {

using checkpoint::Checkpoint;
using checkpoint::DType;
using checkpoint::ModelConfig;
using collectives::SingleRankCollectives;
using cpu::Model;
using engine::ForwardResult;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::SeqId;

namespace {

using kernels::DeviceDType;
using testing::GoldenCase;

// fp32 against transformers: the CPU backend's golden tolerance (1e-4, golden_test.cc; it
// observes ≤ 1e-5) plus 1e-4 for the device's own summation orders (true-fp32 cuBLASLt, no
// TF32; split-K decode attention; block reductions; precise expf/sincosf), five times the 2e-5
// the CPU golden test allows between its own orders (batching, chunking, TP).
// The DeepSeek goldens take the same bound: their CPU golden test holds them at 1e-4 too, and
// the device's extra orders are the same kinds — true-fp32 (strided batched) GEMMs, the MLA
// kernel's fp32 online softmax and split merge, the MoE combine summing a token's experts in
// fp32 in the CPU's ascending order, the fp32 router and routing (the same expert ids, weights
// up to expf's last bits). The goldens' smallest top-2 logit gap (3.5e-3) is 17× the bound, so
// the greedy tokens must match too.
constexpr testing::Tolerance kGpuGoldenTol{.atol = 2e-4};
constexpr double kBf16MinCosine = 0.999;
constexpr double kBf16MinDecisionAgreement = 0.99;
// Prompt tokens per step: ≤ W (8 in every DMS golden), so that no decision acts in the step
// that takes it (ExchangeDecisions).
constexpr int kPromptChunk = 8;
constexpr int kPageSize = 16;

int Argmax(const float* row, int n, float* gap) {
  int best = 0, second = -1;
  for (int i = 1; i < n; ++i) {
    if (row[i] > row[best]) {
      second = best;
      best = i;
    } else if (second < 0 || row[i] > row[second]) {
      second = i;
    }
  }
  *gap = second < 0 ? INFINITY : row[best] - row[second];
  return best;
}

double Cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

// Sequence i of a golden batch is case i.
absl::Status AddCaseSequences(KvCache& cache, size_t num_cases) {
  for (size_t i = 0; i < num_cases; ++i) {
    RAMI_RETURN_IF_ERROR(cache.AddSequence(static_cast<SeqId>(i)));
  }
  return absl::OkStatus();
}

// Every case of a golden in one batch (sequence id = case index), step by step: each step feeds
// every unfinished case its next ≤ kPromptChunk prompt tokens with every row's logits or, once
// its prompt is in, one decode token — the golden's when teacher-forced, else the backend's own
// greedy choice. Keeps every case's logits rows for the final comparison with the golden.
class GoldenBatch {
 public:
  // Cases whose prompt, resp. whose decoding, a step completed.
  struct Completed {
    std::vector<size_t> prompt, decode;
  };
  struct Summary {
    double max_error = 0.0;     // max |logit − golden| over every row
    double worst_cosine = 1.0;  // min cosine(row, golden row)
  };

  GoldenBatch(const std::vector<GoldenCase>& cases, int vocab, bool teacher_forced)
      : cases_(cases), vocab_(vocab), teacher_forced_(teacher_forced), runs_(cases.size()) {}

  // Plans the next step; false once every case is done.
  bool Next() {
    chunks_.clear();
    owner_.clear();
    first_position_.clear();
    for (size_t i = 0; i < cases_.size(); ++i) {
      const GoldenCase& c = cases_[i];
      const CaseRun& run = runs_[i];
      SequenceChunk chunk{.seq_id = static_cast<SeqId>(i), .tokens = {}, .all_logits = false};
      if (run.prompt_fed < c.prompt.size()) {
        const size_t n = std::min<size_t>(kPromptChunk, c.prompt.size() - run.prompt_fed);
        const auto first = c.prompt.begin() + static_cast<std::ptrdiff_t>(run.prompt_fed);
        chunk.tokens.assign(first, first + static_cast<std::ptrdiff_t>(n));
        chunk.all_logits = true;
      } else if (run.decoded.size() < c.greedy.size()) {
        float gap;
        chunk.tokens = {teacher_forced_ ? c.greedy[run.decoded.size()]
                                        : Argmax(run.rows.back().data(), vocab_, &gap)};
      } else {
        continue;
      }
      first_position_.push_back(static_cast<int64_t>(run.prompt_fed + run.decoded.size()));
      owner_.push_back(i);
      chunks_.push_back(std::move(chunk));
    }
    return !chunks_.empty();
  }
  const std::vector<SequenceChunk>& chunks() const { return chunks_; }

  // The golden's decisions of this step's tokens, [layer][token][head] (chunks concatenated):
  // the token at position p carries α_p, which flags p − 1.
  std::vector<uint8_t> GoldenDecisions(int layers, int heads) const {
    const size_t tokens = NumTokens();
    std::vector<uint8_t> out(static_cast<size_t>(layers) * tokens * heads);
    ForEachToken([&](size_t token, size_t i, int64_t p) {
      for (int layer = 0; layer < layers; ++layer) {
        for (int h = 0; h < heads; ++h) {
          out[(layer * tokens + token) * heads + h] = cases_[i].dms->alpha[layer][h][p];
        }
      }
    });
    return out;
  }

  // Adds this step's decisions at positions ≥ 1 (α_0 is discarded by the rules) to *decided,
  // and those where `own` (GoldenDecisions' layout) equals the golden to *agree.
  void CountAgreement(const std::vector<uint8_t>& own, int layers, int heads, int64_t* agree,
                      int64_t* decided) const {
    const std::vector<uint8_t> golden = GoldenDecisions(layers, heads);
    ASSERT_EQ(own.size(), golden.size()) << "recorded decisions";
    const size_t tokens = NumTokens();
    ForEachToken([&](size_t token, size_t, int64_t p) {
      if (p == 0) return;
      for (int layer = 0; layer < layers; ++layer) {
        for (int h = 0; h < heads; ++h) {
          const size_t at = (layer * tokens + token) * heads + h;
          *agree += own[at] == golden[at] ? 1 : 0;
          ++*decided;
        }
      }
    });
  }

  // Teacher forcing of DMS decisions, after a step and before the next: returns the decisions
  // the backend took in this step (GoldenDecisions' layout; read from the cache's window
  // flags: token p's α is the flag of p − 1) and, with `forced`, writes those in their place.
  // A query t hides an evicted p only once t − p > W, and a step's commit moves out of the
  // window only positions its last query hides; with chunks of ≤ W tokens, every flag a step
  // sets is still in the window and has hidden nothing when the step ends, so the forced flags
  // act exactly where the backend's own would have. The CUDA backend's device-table mirror
  // takes the flags a step set from the host at the next step's Sync
  // (DeviceKvTables::ExpectDeviceFlags).
  std::vector<uint8_t> ExchangeDecisions(KvCache& cache, const std::vector<uint8_t>* forced) const {
    const int layers = cache.num_layers(), heads = cache.num_kv_heads();
    const size_t tokens = NumTokens();
    std::vector<uint8_t> own(static_cast<size_t>(layers) * tokens * heads);
    if (forced != nullptr && forced->size() != own.size()) {
      ADD_FAILURE() << "forced decisions of " << forced->size() << " values, want " << own.size();
      return own;
    }
    ForEachToken([&](size_t token, size_t i, int64_t p) {
      if (p == 0) return;  // α_0 is discarded
      const SeqId id = static_cast<SeqId>(i);
      const kv::StepStreams streams = cache.BuildStepStreams({id});
      for (int layer = 0; layer < layers; ++layer) {
        for (int h = 0; h < heads; ++h) {
          const size_t s = static_cast<size_t>(layer) * heads + h;
          uint8_t& flag = streams.Flag(s, p - 1 - streams.window_base[s]);
          const size_t at = (layer * tokens + token) * heads + h;
          own[at] = flag;
          if (forced != nullptr) flag = (*forced)[at];
        }
      }
    });
    return own;
  }

  // Stores this step's logits rows (every row of a prompt chunk, the last of a decode chunk).
  absl::StatusOr<Completed> Record(const ForwardResult& result) {
    size_t rows = 0;
    for (const SequenceChunk& chunk : chunks_) rows += chunk.all_logits ? chunk.tokens.size() : 1;
    if (result.first_row.size() != chunks_.size() || result.logits.size() != rows * vocab_) {
      return absl::InternalError(absl::StrCat("result of ", result.first_row.size(), " chunks, ",
                                              result.logits.size(), " logits; want ",
                                              chunks_.size(), " chunks, ", rows, " rows"));
    }
    Completed done;
    for (size_t b = 0; b < chunks_.size(); ++b) {
      const GoldenCase& c = cases_[owner_[b]];
      CaseRun& run = runs_[owner_[b]];
      const size_t n = chunks_[b].all_logits ? chunks_[b].tokens.size() : 1;
      for (size_t r = 0; r < n; ++r) {
        const float* row = result.logits.data() + (result.first_row[b] + r) * vocab_;
        run.rows.emplace_back(row, row + vocab_);
      }
      if (run.prompt_fed < c.prompt.size()) {
        run.prompt_fed += chunks_[b].tokens.size();
        if (run.prompt_fed == c.prompt.size()) done.prompt.push_back(owner_[b]);
      } else {
        run.decoded.push_back(chunks_[b].tokens[0]);
        if (run.decoded.size() == c.greedy.size()) done.decode.push_back(owner_[b]);
      }
    }
    return done;
  }

  // DMS goldens: the live count of every stream of the cases `done` completed equals the
  // golden's after the prompt, resp. at the end.
  void ExpectGoldenLive(const KvCache& cache, const Completed& done,
                        const std::string& where) const {
    auto expect = [&](size_t i, const std::vector<std::vector<int64_t>>& want, const char* when) {
      for (int layer = 0; layer < cache.num_layers(); ++layer) {
        for (int h = 0; h < cache.num_kv_heads(); ++h) {
          EXPECT_EQ(cache.StreamLive(static_cast<SeqId>(i), layer, h), want[layer][h])
              << where << " case " << i << " " << when << " layer " << layer << " head " << h;
        }
      }
    };
    for (size_t i : done.prompt) {
      if (cases_[i].dms.has_value()) expect(i, cases_[i].dms->live_after_prefill, "after prompt");
    }
    for (size_t i : done.decode) {
      if (cases_[i].dms.has_value()) expect(i, cases_[i].dms->live_final, "at the end");
    }
  }

  // Once done: fp32 — the golden's greedy tokens and every row within kGpuGoldenTol; bf16 —
  // every row's cosine with the golden's ≥ kBf16MinCosine.
  Summary ExpectMatchesGolden(bool fp32, const std::string& mode) const {
    Summary s;
    for (size_t i = 0; i < cases_.size(); ++i) {
      const GoldenCase& c = cases_[i];
      const CaseRun& run = runs_[i];
      if (fp32) {
        EXPECT_EQ(run.decoded, c.greedy) << mode << " case " << i << " greedy tokens";
      }
      EXPECT_EQ(run.rows.size(), c.prompt.size() + c.greedy.size()) << mode << " case " << i;
      for (size_t r = 0; r < run.rows.size() && r < c.prompt.size() + c.greedy.size(); ++r) {
        const std::vector<float>& want =
            r < c.prompt.size() ? c.prefill_logits[r] : c.decode_logits[r - c.prompt.size()];
        const std::vector<float>& row = run.rows[r];
        const std::string where = mode + " case " + std::to_string(i) + " row " + std::to_string(r);
        EXPECT_EQ(want.size(), row.size()) << where;
        if (want.size() != row.size()) continue;
        for (size_t j = 0; j < row.size(); ++j) {
          s.max_error = std::max(s.max_error, static_cast<double>(std::fabs(row[j] - want[j])));
        }
        const double cosine = Cosine(row.data(), want.data(), vocab_);
        s.worst_cosine = std::min(s.worst_cosine, cosine);
        if (fp32) {
          EXPECT_TRUE(testing::AllClose(row, want, kGpuGoldenTol, where));
        } else {
          EXPECT_GE(cosine, kBf16MinCosine) << where;
        }
      }
    }
    return s;
  }

 private:
  struct CaseRun {
    size_t prompt_fed = 0;                 // prompt tokens fed so far
    std::vector<int32_t> decoded;          // decode tokens fed so far (g0, g1, …)
    std::vector<std::vector<float>> rows;  // every prompt position's logits, then one per decode
  };

  size_t NumTokens() const {
    size_t n = 0;
    for (const SequenceChunk& chunk : chunks_) n += chunk.tokens.size();
    return n;
  }
  // f(token index in the step, case, position) for every token of this step, chunks in order.
  template <typename F>
  void ForEachToken(F f) const {
    for (size_t b = 0, token = 0; b < chunks_.size(); ++b) {
      for (size_t k = 0; k < chunks_[b].tokens.size(); ++k, ++token) {
        f(token, owner_[b], first_position_[b] + static_cast<int64_t>(k));
      }
    }
  }

  const std::vector<GoldenCase>& cases_;
  const int vocab_;
  const bool teacher_forced_;
  std::vector<CaseRun> runs_;
  std::vector<SequenceChunk> chunks_;    // this step's
  std::vector<size_t> owner_;            // [chunk] its case
  std::vector<int64_t> first_position_;  // [chunk] position of its first token
};

// Every stream of every sequence has the same live count in both caches.
void ExpectSameLive(const KvCache& got, const KvCache& want, size_t num_seqs,
                    const std::string& where) {
  for (size_t i = 0; i < num_seqs; ++i) {
    for (int layer = 0; layer < want.num_layers(); ++layer) {
      for (int h = 0; h < want.num_kv_heads(); ++h) {
        const SeqId id = static_cast<SeqId>(i);
        EXPECT_EQ(got.StreamLive(id, layer, h), want.StreamLive(id, layer, h))
            << where << " case " << i << " layer " << layer << " head " << h;
      }
    }
  }
}

void PrintSummary(const std::string& mode, const GoldenBatch::Summary& s, int64_t agree,
                  int64_t decided) {
  std::printf("[%s] max |logit - golden| %.3g, worst logits cosine %.6f", mode.c_str(), s.max_error,
              s.worst_cosine);
  if (decided > 0) {
    std::printf("; decision agreement %.4f (%lld of %lld (token, layer, head))",
                static_cast<double>(agree) / static_cast<double>(decided),
                static_cast<long long>(agree), static_cast<long long>(decided));
  }
  std::printf("\n");
}

class CudaModelGoldenGpuTest
    : public ::testing::TestWithParam<std::tuple<std::string, DeviceDType>> {};

TEST_P(CudaModelGoldenGpuTest, MatchesTransformers) {
  const std::string& name = std::get<0>(GetParam());
  const bool fp32 = std::get<1>(GetParam()) == DeviceDType::kF32;
  absl::StatusOr<std::vector<GoldenCase>> cases = testing::LoadGoldenCases(name);
  ASSERT_TRUE(cases.ok()) << cases.status();
  absl::StatusOr<std::unique_ptr<Model>> cpu = Model::Load(testing::GoldenModelDir(name), {});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const ModelConfig& config = (*cpu)->config();
  // The Llama-family kernels' head sizes (MLA's config head_dim is the rope width: any).
  ASSERT_TRUE(config.mla.enabled || config.head_dim == 64 || config.head_dim == 128)
      << config.head_dim;
  const CachePolicy policy = (*cpu)->shape().DefaultCachePolicy();
  const bool dms = policy.kind == CachePolicyKind::kDms;
  for (const GoldenCase& c : *cases) ASSERT_EQ(c.dms.has_value(), dms);
  // The CPU backend: on the same steps, the fp32 DMS reference for live counts; without a
  // device, the backend the driver and the fp32 checks run on.
  absl::StatusOr<std::unique_ptr<KvCache>> cpu_cache =
      (*cpu)->shape().MakeCache({.page_size = kPageSize, .num_pages = 1024}, policy);
  ASSERT_TRUE(cpu_cache.ok()) << cpu_cache.status();
  ASSERT_TRUE(AddCaseSequences(**cpu_cache, cases->size()).ok());
  if (dms) {
    ASSERT_GE(policy.window, kPromptChunk) << "ExchangeDecisions needs chunks of ≤ W";
  }
  SingleRankCollectives comm;
  GoldenBatch batch(*cases, config.vocab_size, /*teacher_forced=*/!fp32);
  const int layers = config.num_layers;
  const int heads = (*cpu_cache)->num_kv_heads();

  if (cuda::DeviceCount() == 0) {
    // The same driver on the CPU backend (fp32): the fp32 case as is; the bf16 case's teacher
    // forcing, where the golden's decisions equal the backend's own, so that nothing changes.
    const std::string mode =
        name + (fp32 ? " fp32" : " teacher-forced") + " on the CPU backend (no device)";
    int64_t agree = 0, decided = 0;
    for (int step = 0; batch.Next(); ++step) {
      const std::string where = mode + " step " + std::to_string(step);
      absl::StatusOr<ForwardResult> out = (*cpu)->Forward(batch.chunks(), **cpu_cache, comm);
      ASSERT_TRUE(out.ok()) << where << ": " << out.status();
      if (dms) {
        const std::vector<uint8_t> forced = batch.GoldenDecisions(layers, heads);
        const std::vector<uint8_t> own =
            batch.ExchangeDecisions(**cpu_cache, fp32 ? nullptr : &forced);
        ASSERT_NO_FATAL_FAILURE(batch.CountAgreement(own, layers, heads, &agree, &decided));
      }
      absl::StatusOr<GoldenBatch::Completed> done = batch.Record(*out);
      ASSERT_TRUE(done.ok()) << where << ": " << done.status();
      batch.ExpectGoldenLive(**cpu_cache, *done, where);
    }
    PrintSummary(mode, batch.ExpectMatchesGolden(/*fp32=*/true, mode), agree, decided);
    if (dms) {
      EXPECT_EQ(agree, decided) << mode;
    }
    if (dms && !fp32) {
      // Forcing acts: every decision "keep" leaves every stream the whole sequence.
      absl::StatusOr<std::unique_ptr<KvCache>> kept =
          (*cpu)->shape().MakeCache({.page_size = kPageSize, .num_pages = 1024}, policy);
      ASSERT_TRUE(kept.ok()) << kept.status();
      ASSERT_TRUE(AddCaseSequences(**kept, cases->size()).ok());
      GoldenBatch keep(*cases, config.vocab_size, /*teacher_forced=*/true);
      while (keep.Next()) {
        absl::StatusOr<ForwardResult> out = (*cpu)->Forward(keep.chunks(), **kept, comm);
        ASSERT_TRUE(out.ok()) << out.status();
        const std::vector<uint8_t> zeros(keep.GoldenDecisions(layers, heads).size(), 0);
        keep.ExchangeDecisions(**kept, &zeros);
        ASSERT_TRUE(keep.Record(*out).ok());
      }
      for (size_t i = 0; i < cases->size(); ++i) {
        const SeqId id = static_cast<SeqId>(i);
        for (int layer = 0; layer < layers; ++layer) {
          for (int h = 0; h < heads; ++h) {
            EXPECT_EQ((*kept)->StreamLive(id, layer, h), (*kept)->Length(id))
                << name << " all kept: case " << i << " layer " << layer << " head " << h;
          }
        }
      }
    }
    RAMI_REQUIRE_CUDA_DEVICE();
  }

  const std::string mode = name + (fp32 ? " fp32" : " bf16, teacher-forced");
  absl::StatusOr<std::unique_ptr<Model>> for_gpu = Model::Load(testing::GoldenModelDir(name), {});
  ASSERT_TRUE(for_gpu.ok()) << for_gpu.status();
  absl::StatusOr<std::unique_ptr<cuda::CudaModel>> gpu =
      cuda::CudaModel::Create((*for_gpu)->shape(), (*for_gpu)->weights(),
                              {.dtype = fp32 ? DeviceDType::kF32 : DeviceDType::kBF16});
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  absl::StatusOr<std::unique_ptr<KvCache>> gpu_cache =
      (*gpu)->MakeCache(policy, gpu_test::kTestCache);
  ASSERT_TRUE(gpu_cache.ok()) << gpu_cache.status();
  ASSERT_TRUE(AddCaseSequences(**gpu_cache, cases->size()).ok());
  int64_t agree = 0, decided = 0;
  for (int step = 0; batch.Next(); ++step) {
    const std::string where = mode + " step " + std::to_string(step);
    const absl::Status reserved = (*gpu)->Reserve(batch.chunks(), **gpu_cache);
    ASSERT_TRUE(reserved.ok()) << where << ": " << reserved;
    absl::StatusOr<ForwardResult> got = (*gpu)->RunReserved(batch.chunks(), **gpu_cache, comm);
    ASSERT_TRUE(got.ok()) << where << ": " << got.status();
    if (dms) {  // the device's own decisions always counted; bf16 runs on the golden's
      const std::vector<uint8_t> forced = batch.GoldenDecisions(layers, heads);
      const std::vector<uint8_t> own =
          batch.ExchangeDecisions(**gpu_cache, fp32 ? nullptr : &forced);
      ASSERT_NO_FATAL_FAILURE(batch.CountAgreement(own, layers, heads, &agree, &decided));
    }
    if (dms && fp32) {  // the CPU backend on the same step: the same live counts
      absl::StatusOr<ForwardResult> want = (*cpu)->Forward(batch.chunks(), **cpu_cache, comm);
      ASSERT_TRUE(want.ok()) << where << ": " << want.status();
      ExpectSameLive(**gpu_cache, **cpu_cache, cases->size(), where);
    }
    absl::StatusOr<GoldenBatch::Completed> done = batch.Record(*got);
    ASSERT_TRUE(done.ok()) << where << ": " << done.status();
    batch.ExpectGoldenLive(**gpu_cache, *done, where);
  }
  PrintSummary(mode, batch.ExpectMatchesGolden(fp32, mode), agree, decided);
  if (dms) {
    ASSERT_GT(decided, 0);
    if (fp32) {
      EXPECT_EQ(agree, decided) << mode << ": fp32 decisions differ from the golden's";
    } else {
      EXPECT_GE(static_cast<double>(agree) / static_cast<double>(decided),
                kBf16MinDecisionAgreement)
          << mode;
    }
  }
}

std::string GoldenParamName(
    const ::testing::TestParamInfo<std::tuple<std::string, DeviceDType>>& info) {
  return std::get<0>(info.param) +
         (std::get<1>(info.param) == DeviceDType::kF32 ? "_fp32" : "_bf16");
}

INSTANTIATE_TEST_SUITE_P(
    HeadDim64And128, CudaModelGoldenGpuTest,
    ::testing::Combine(::testing::Values("llama3_hd128", "qwen2_hd64", "qwen3_dms_hd64",
                                         "qwen3_dms_adapter_hd64"),
                       ::testing::Values(DeviceDType::kF32, DeviceDType::kBF16)),
    GoldenParamName);

// DeepSeek-V2/V3: MLA + MoE (+ DMS-MLA), fp8 weights dequantized at load.
INSTANTIATE_TEST_SUITE_P(
    DeepSeek, CudaModelGoldenGpuTest,
    ::testing::Combine(::testing::Values("deepseek_v2", "deepseek_v2_greedy", "deepseek_v3",
                                         "deepseek_v3_fp8", "deepseek_v3_dms"),
                       ::testing::Values(DeviceDType::kF32, DeviceDType::kBF16)),
    GoldenParamName);

constexpr int kHidden = 256, kHeadDim = 64;

// The qwen3 golden's config with hidden 256 and head_dim 64, and its tensor names with shapes
// for those sizes, filled with random values (norm weights near 1).
// A tensor of a random checkpoint: its shape, and whether it is a norm weight (values near 1).
struct RandomTensor {
  std::vector<int64_t> shape;
  bool norm = false;
};
bool EndsWith(const std::string& name, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
}

// `config` and, for every tensor of `golden` that shape_of maps (nullopt: left out), random
// values N(0, 0.05) (norm weights: 1 + that), drawn in the golden's tensor order from `seed`.
absl::Status WriteRandomCheckpoint(
    const std::string& dir, const Checkpoint& golden, const nlohmann::json& config, uint32_t seed,
    const std::function<absl::StatusOr<std::optional<RandomTensor>>(const std::string&)>&
        shape_of) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<testing::TensorSpec> tensors;
  for (const std::string& name : golden.TensorNames()) {
    RAMI_ASSIGN_OR_RETURN(std::optional<RandomTensor> t, shape_of(name));
    if (!t.has_value()) continue;
    int64_t n = 1;
    for (int64_t d : t->shape) n *= d;
    std::vector<float> values(n);
    for (float& x : values) x = (t->norm ? 1.0f : 0.0f) + normal(rng);
    tensors.push_back(testing::MakeTensor(name, DType::kF32, t->shape, values));
  }
  return testing::WriteModelDir(dir, config,
                                {{"model.safetensors", testing::BuildSafetensors(tensors)}});
}

// The qwen3 golden's config with hidden 256 and head_dim 64, and its tensor names with shapes
// for those sizes, filled with random values (norm weights near 1).
absl::Status WriteWideQwen3(const std::string& dir, uint32_t seed) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> ck =
      Checkpoint::Open(testing::GoldenModelDir("qwen3"));
  if (!ck.ok()) return ck.status();
  nlohmann::json config = (*ck)->config();
  config["hidden_size"] = kHidden;
  config["head_dim"] = kHeadDim;
  const int64_t hq = config["num_attention_heads"].get<int64_t>() * kHeadDim;
  const int64_t hkv = config["num_key_value_heads"].get<int64_t>() * kHeadDim;
  const int64_t inter = config["intermediate_size"].get<int64_t>();
  const int64_t vocab = config["vocab_size"].get<int64_t>();
  return WriteRandomCheckpoint(
      dir, **ck, config, seed,
      [&](const std::string& name) -> absl::StatusOr<std::optional<RandomTensor>> {
        auto ends = [&](const char* suffix) { return EndsWith(name, suffix); };
        if (ends("embed_tokens.weight") || ends("lm_head.weight")) {
          return RandomTensor{{vocab, kHidden}};
        }
        if (ends("q_proj.weight")) return RandomTensor{{hq, kHidden}};
        if (ends("k_proj.weight") || ends("v_proj.weight")) return RandomTensor{{hkv, kHidden}};
        if (ends("o_proj.weight")) return RandomTensor{{kHidden, hq}};
        if (ends("q_norm.weight") || ends("k_norm.weight")) return RandomTensor{{kHeadDim}, true};
        if (ends("gate_proj.weight") || ends("up_proj.weight")) {
          return RandomTensor{{inter, kHidden}};
        }
        if (ends("down_proj.weight")) return RandomTensor{{kHidden, inter}};
        if (ends("layernorm.weight") || ends("norm.weight")) return RandomTensor{{kHidden}, true};
        return absl::InternalError("wide qwen3: unexpected tensor " + name);
      });
}

// Writes a random checkpoint into `dir` (WriteWideQwen3, WriteWideDeepseek).
using ModelWriter = absl::Status (*)(const std::string& dir, uint32_t seed);

// A two-sequence schedule: seq 1 prefills `prompt_chunks` (one chunk per step), then decodes;
// seq 2 joins at step `join_step` with a `join_prompt`-token prefill (every row's logits) next
// to seq 1's decode token, then decodes too; `steps` steps in all.
struct WideSchedule {
  std::vector<int> prompt_chunks;
  int join_step = 0;
  int join_prompt = 0;
  int steps = 0;
};

// Two sequences, chunked prefill, prefill next to decode, greedy decode teacher-forced by the
// CPU's tokens. fp32: every logits row within 2e-3 + 2e-3·|cpu| of the CPU's (random weights,
// hidden 256: larger sums than the goldens'), the same greedy token wherever the CPU's top two
// differ by more than 1e-3; bf16: cosine ≥ 0.999 with the CPU's.
void ExpectWideModelMatchesCpu(const std::string& name, ModelWriter write,
                               const WideSchedule& schedule) {
  absl::StatusOr<testing::ScopedTempDir> dir =
      testing::ScopedTempDir::Create(::testing::TempDir(), "rami_cuda_model");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const absl::Status written = write(dir->path(), 7);
  ASSERT_TRUE(written.ok()) << written;
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    const bool exact = dtype == DeviceDType::kF32;
    const std::string mode = name + (exact ? " fp32" : " bf16");
    absl::StatusOr<std::unique_ptr<Model>> cpu = Model::Load(dir->path(), {});
    absl::StatusOr<std::unique_ptr<Model>> for_gpu = Model::Load(dir->path(), {});
    ASSERT_TRUE(cpu.ok() && for_gpu.ok()) << cpu.status();
    const CachePolicy policy = (*cpu)->shape().DefaultCachePolicy();
    absl::StatusOr<std::unique_ptr<KvCache>> cpu_cache =
        (*cpu)->shape().MakeCache({.page_size = kPageSize, .num_pages = 1024}, policy);
    ASSERT_TRUE(cpu_cache.ok()) << cpu_cache.status();
    if (cuda::DeviceCount() == 0) {  // the variant still loads and runs on the CPU backend
      ASSERT_TRUE((*cpu_cache)->AddSequence(9).ok());
      SingleRankCollectives comm;
      const std::vector<SequenceChunk> one = {{.seq_id = 9, .tokens = {1, 2, 3}}};
      ASSERT_TRUE((*cpu)->Forward(one, **cpu_cache, comm).ok());
      RAMI_REQUIRE_CUDA_DEVICE();
    }
    absl::StatusOr<std::unique_ptr<cuda::CudaModel>> gpu =
        cuda::CudaModel::Create((*for_gpu)->shape(), (*for_gpu)->weights(), {.dtype = dtype});
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    absl::StatusOr<std::unique_ptr<KvCache>> gpu_cache =
        (*gpu)->MakeCache(policy, gpu_test::kTestCache);
    ASSERT_TRUE(gpu_cache.ok()) << gpu_cache.status();
    std::printf("[%s] weights %lld bytes, KV pool %lld bytes (%d pages)\n", mode.c_str(),
                static_cast<long long>((*gpu)->weight_bytes()),
                static_cast<long long>((*gpu)->pool_bytes()), (*gpu_cache)->pool().num_pages());
    SingleRankCollectives comm;
    const int vocab = (*cpu)->config().vocab_size;
    std::mt19937 rng(5);
    auto prompt = [&](int n) {
      std::vector<int32_t> t(n);
      for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
      return t;
    };
    for (SeqId id : {1, 2}) {
      ASSERT_TRUE((*cpu_cache)->AddSequence(id).ok());
      ASSERT_TRUE((*gpu_cache)->AddSequence(id).ok());
    }
    const int prefill_steps = static_cast<int>(schedule.prompt_chunks.size());
    int32_t next1 = -1, next2 = -1;
    double worst_cos = 1.0;
    for (int step = 0; step < schedule.steps; ++step) {
      std::vector<SequenceChunk> chunks;
      if (step < prefill_steps) {
        chunks.push_back({.seq_id = 1, .tokens = prompt(schedule.prompt_chunks[step])});
      } else {
        chunks.push_back({.seq_id = 1, .tokens = {next1}});
      }
      if (step == schedule.join_step) {
        chunks.push_back({.seq_id = 2, .tokens = prompt(schedule.join_prompt), .all_logits = true});
      }
      if (step > schedule.join_step) chunks.push_back({.seq_id = 2, .tokens = {next2}});
      absl::StatusOr<ForwardResult> want = (*cpu)->Forward(chunks, **cpu_cache, comm);
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_TRUE((*gpu)->Reserve(chunks, **gpu_cache).ok());
      absl::StatusOr<ForwardResult> got = (*gpu)->RunReserved(chunks, **gpu_cache, comm);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->first_row, want->first_row);
      ASSERT_EQ(got->logits.size(), want->logits.size());
      const int rows = static_cast<int>(want->logits.size() / vocab);
      for (int r = 0; r < rows; ++r) {
        const float* a = got->logits.data() + static_cast<size_t>(r) * vocab;
        const float* b = want->logits.data() + static_cast<size_t>(r) * vocab;
        const std::string where =
            mode + " step " + std::to_string(step) + " row " + std::to_string(r);
        const double cos = Cosine(a, b, vocab);
        worst_cos = std::min(worst_cos, cos);
        if (exact) {
          ASSERT_TRUE(testing::AllClose({a, static_cast<size_t>(vocab)},
                                        {b, static_cast<size_t>(vocab)},
                                        {.atol = 2e-3, .rtol = 2e-3}, where));
          float gap_want, gap_got;
          const int tw = Argmax(b, vocab, &gap_want);
          if (gap_want > 1e-3f) {
            EXPECT_EQ(Argmax(a, vocab, &gap_got), tw) << where;
          }
        } else {
          ASSERT_GE(cos, kBf16MinCosine) << where;
        }
      }
      // Teacher forcing: both continue with the CPU's greedy tokens.
      float gap;
      const int last1 = want->first_row[0];  // seq 1 returns its last token's row only
      next1 = Argmax(want->logits.data() + static_cast<size_t>(last1) * vocab, vocab, &gap);
      if (chunks.size() > 1) {
        const int last2 = rows - 1;
        next2 = Argmax(want->logits.data() + static_cast<size_t>(last2) * vocab, vocab, &gap);
      }
    }
    std::printf("[%s] worst logits cosine %.6f\n", mode.c_str(), worst_cos);
  }
}

// Seq 1 prefills 12 + 9 tokens (chunked), then decodes; seq 2 joins with a 17-token prefill
// next to seq 1's decode at step 4, then both decode.
TEST(CudaModelWideQwen3GpuTest, MatchesTheCpuBackend) {
  ExpectWideModelMatchesCpu(
      "wide qwen3", &WriteWideQwen3,
      {.prompt_chunks = {12, 9}, .join_step = 4, .join_prompt = 17, .steps = 30});
}

// The deepseek_v3 golden's config (q_lora, YaRN, noaux_tc routing with a correction bias, one
// dense layer then MoE, shared expert) at sizes the goldens do not reach: hidden 256, 20 heads
// (two head blocks of the MLA kernel, the second partial), latent rows of 128 + 32 values,
// q_lora 64, 4 experts of 64. Every token takes all 4 experts (num_experts_per_tok 4): random
// router logits have no margin, and an expert choice flipped by a last-bit difference between
// two correct backends would fail an exact comparison; the routing kernel, the permutation,
// the per-expert GEMMs and the combine still run, and the goldens test the choice itself.
absl::Status WriteWideDeepseek(const std::string& dir, uint32_t seed) {
  constexpr int64_t kHeads = 20, kQLora = 64, kLora = 128, kRope = 32, kNope = 32, kV = 32;
  constexpr int64_t kInter = 256, kMoeInter = 64, kExperts = 4;
  absl::StatusOr<std::unique_ptr<Checkpoint>> ck =
      Checkpoint::Open(testing::GoldenModelDir("deepseek_v3"));
  if (!ck.ok()) return ck.status();
  nlohmann::json config = (*ck)->config();
  config["hidden_size"] = kHidden;
  config["num_attention_heads"] = kHeads;
  config["num_key_value_heads"] = kHeads;
  config["q_lora_rank"] = kQLora;
  config["kv_lora_rank"] = kLora;
  config["qk_rope_head_dim"] = kRope;
  config["qk_nope_head_dim"] = kNope;
  config["qk_head_dim"] = kRope + kNope;
  config["head_dim"] = kRope;
  config["v_head_dim"] = kV;
  config["intermediate_size"] = kInter;
  config["moe_intermediate_size"] = kMoeInter;
  config["n_routed_experts"] = kExperts;
  config["num_experts_per_tok"] = kExperts;
  config["n_group"] = 2;
  config["topk_group"] = 2;
  config["max_position_embeddings"] = 4096;
  const int64_t vocab = config["vocab_size"].get<int64_t>();
  const int64_t shared = kMoeInter * config["n_shared_experts"].get<int64_t>();
  return WriteRandomCheckpoint(
      dir, **ck, config, seed,
      [&](const std::string& name) -> absl::StatusOr<std::optional<RandomTensor>> {
        auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
        auto ends = [&](const char* suffix) { return EndsWith(name, suffix); };
        if (const size_t at = name.find(".experts.");
            at != std::string::npos && std::stoll(name.substr(at + 9)) >= kExperts) {
          return std::nullopt;  // the golden's experts 4 … 7
        }
        const int64_t inter = has(".shared_experts.") ? shared
                              : has(".experts.")      ? kMoeInter
                                                      : kInter;
        if (ends("embed_tokens.weight") || ends("lm_head.weight")) {
          return RandomTensor{{vocab, kHidden}};
        }
        if (ends("q_a_proj.weight")) return RandomTensor{{kQLora, kHidden}};
        if (ends("q_a_layernorm.weight")) return RandomTensor{{kQLora}, true};
        if (ends("q_b_proj.weight")) return RandomTensor{{kHeads * (kNope + kRope), kQLora}};
        if (ends("kv_a_proj_with_mqa.weight")) return RandomTensor{{kLora + kRope, kHidden}};
        if (ends("kv_a_layernorm.weight")) return RandomTensor{{kLora}, true};
        if (ends("kv_b_proj.weight")) return RandomTensor{{kHeads * (kNope + kV), kLora}};
        if (ends("o_proj.weight")) return RandomTensor{{kHidden, kHeads * kV}};
        if (ends("mlp.gate.weight")) return RandomTensor{{kExperts, kHidden}};
        if (ends("e_score_correction_bias")) return RandomTensor{{kExperts}};
        if (ends("gate_proj.weight") || ends("up_proj.weight")) {
          return RandomTensor{{inter, kHidden}};
        }
        if (ends("down_proj.weight")) return RandomTensor{{kHidden, inter}};
        if (ends("layernorm.weight") || ends("norm.weight")) return RandomTensor{{kHidden}, true};
        return absl::InternalError("wide deepseek: unexpected tensor " + name);
      });
}

// Seq 1 prefills 600 tokens in chunks of 256, 256 and 88; seq 2 joins with 40 tokens at step 4.
// The decode steps then see ~600 keys with 2 tokens × 2 head blocks: the MLA kernel splits the
// keys (seq 2's short context leaving a split empty) — the goldens' contexts never do.
TEST(CudaModelWideDeepseekGpuTest, MatchesTheCpuBackend) {
  ExpectWideModelMatchesCpu(
      "wide deepseek", &WriteWideDeepseek,
      {.prompt_chunks = {256, 256, 88}, .join_step = 4, .join_prompt = 40, .steps = 16});
}

}  // namespace
}  // namespace rami
