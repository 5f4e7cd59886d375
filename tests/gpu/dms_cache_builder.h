// A synthetic DMS-layout cache for the attention tests, built directly in the state a step
// leaves it in after its K/V write (dms.md §4, worker/kv/kv_stream.cc geometry): per (sequence,
// KV head) stream, a kept list of the tokens that left the window with flag 0 and a window
// from the page-aligned window_base, with random flags (7 of 8 evicted), the newest token's
// flag pending (0), stale slots before window_start filled with garbage that must never be
// read, and pages scattered over the pool. Exposes the same cache as the CPU twin's view
// (fp32 host pools) and as the CUDA view (device pools of the tested dtype). Also the step's
// query tokens, the same tokens with padding tokens mixed in, and the checks the decode
// attention tests (GQA and MLA) share: a kernel against its CPU twin over a range of split
// plans, and padding tokens' rows of exact zeros.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

#include "kernels/cuda/attention.h"
#include "kernels/cuda/kv_cache_view.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/gpu_test_util.h"

namespace rami::gpu_test {

struct SeqSpec {
  int32_t length;  // tokens cached after the step's write
  int32_t chunk;   // of which the step's own (query) tokens, the last `chunk`
};

// `batch` decoding sequences (one query token each) of awkward lengths: 4099 alone, else
// 4099, 1, 513, 7, 4100, 2, … (long, single-token, page-crossing and short, repeated).
inline std::vector<SeqSpec> DecodeSeqs(int batch) {
  const int32_t lengths[] = {4099, 1, 513, 7};
  std::vector<SeqSpec> seqs;
  for (int b = 0; b < batch; ++b) {
    seqs.push_back({.length = batch == 1 ? 4099 : lengths[b % 4] + b / 4, .chunk = 1});
  }
  return seqs;
}

struct CacheSpec {
  int page_size = 16;
  int head_dim = 128;
  int num_kv_heads = 1;
  bool dense = false;  // no flags, infinite window
  int32_t window = 16;
  kernels::DeviceDType dtype = kernels::DeviceDType::kBF16;
};

class SyntheticCache {
 public:
  SyntheticCache(const CacheSpec& spec, const std::vector<SeqSpec>& seqs, std::mt19937& rng)
      : spec_(spec) {
    const int heads = spec.num_kv_heads, p = spec.page_size, d = spec.head_dim;
    const int32_t window = spec.dense ? (1 << 30) : spec.window;
    std::bernoulli_distribution evict(7.0 / 8.0);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<std::vector<int32_t>> lists;  // logical pages of each list, in order
    int32_t pages = 0;
    for (const SeqSpec& seq : seqs) {
      for (int h = 0; h < heads; ++h) {
        const int32_t prior = seq.length - seq.chunk;
        const int32_t start = spec.dense || prior == 0 ? 0 : std::max(0, prior - 1 - window);
        std::vector<uint8_t> flag(seq.length, 0);
        if (!spec.dense) {
          for (int32_t i = 0; i + 1 < seq.length; ++i) flag[i] = evict(rng);
        }
        int32_t kept = 0;
        for (int32_t i = 0; i < start; ++i) kept += flag[i] == 0;
        const int32_t base = start / p * p;
        const int32_t kept_pages = (kept + p - 1) / p;
        const int32_t window_pages = (seq.length - base + p - 1) / p;
        kept_page_start_.push_back(pages);
        kept_count_.push_back(kept);
        window_page_start_.push_back(pages + kept_pages);
        window_base_.push_back(base);
        window_start_.push_back(start);
        flag_start_.push_back(static_cast<int32_t>(flags_.size()));
        for (int32_t slot = 0; slot < window_pages * p; ++slot) {
          flags_.push_back(base + slot < seq.length ? flag[base + slot] : 0);
        }
        pages += kept_pages + window_pages;
      }
    }
    // Scatter the logical pages over a pool with some never-used pages.
    const int32_t pool_pages = pages + 7;
    std::vector<int32_t> ids(pool_pages);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    page_table_.assign(ids.begin(), ids.begin() + pages);
    k_pool_.resize(static_cast<size_t>(pool_pages) * p * d);
    v_pool_.resize(k_pool_.size());
    for (float& x : k_pool_) x = normal(rng);
    for (float& x : v_pool_) x = normal(rng);
    k_pool_ = Quantize(k_pool_, spec.dtype);
    v_pool_ = Quantize(v_pool_, spec.dtype);
    flag_ptrs_.resize(flag_start_.size());
    for (size_t s = 0; s < flag_start_.size(); ++s) flag_ptrs_[s] = flags_.data() + flag_start_[s];

    d_k_pool_ = std::make_unique<DeviceArray<uint8_t>>(Encode(k_pool_, spec.dtype));
    d_v_pool_ = std::make_unique<DeviceArray<uint8_t>>(Encode(v_pool_, spec.dtype));
    d_page_table_ = std::make_unique<DeviceArray<int32_t>>(page_table_);
    d_kept_page_start_ = std::make_unique<DeviceArray<int32_t>>(kept_page_start_);
    d_kept_count_ = std::make_unique<DeviceArray<int32_t>>(kept_count_);
    d_window_page_start_ = std::make_unique<DeviceArray<int32_t>>(window_page_start_);
    d_window_base_ = std::make_unique<DeviceArray<int32_t>>(window_base_);
    d_window_start_ = std::make_unique<DeviceArray<int32_t>>(window_start_);
    d_flags_ = std::make_unique<DeviceArray<uint8_t>>(flags_);
    d_flag_start_ = std::make_unique<DeviceArray<int32_t>>(flag_start_);
    window_ = window;
  }

  kernels::KvStreamsView CpuView() {
    return {.k_pool = k_pool_.data(),
            .v_pool = v_pool_.data(),
            .page_table = page_table_.data(),
            .kept_page_start = kept_page_start_.data(),
            .kept_count = kept_count_.data(),
            .window_page_start = window_page_start_.data(),
            .window_base = window_base_.data(),
            .window_start = window_start_.data(),
            .window_flags = spec_.dense ? nullptr : flag_ptrs_.data(),
            .page_size = spec_.page_size,
            .head_dim = spec_.head_dim,
            .window = window_};
  }

  kernels::KvCacheCudaView CudaView() {
    return {.k_pool = d_k_pool_->get(),
            .v_pool = d_v_pool_->get(),
            .page_table = d_page_table_->get(),
            .kept_page_start = d_kept_page_start_->get(),
            .kept_count = d_kept_count_->get(),
            .window_page_start = d_window_page_start_->get(),
            .window_base = d_window_base_->get(),
            .window_start = d_window_start_->get(),
            .flags = spec_.dense ? nullptr : d_flags_->get(),
            .flag_start = d_flag_start_->get(),
            .page_size = spec_.page_size,
            .head_dim = spec_.head_dim,
            .window = window_,
            .dtype = spec_.dtype};
  }

  // Upper bound of any query's visible keys (kept + window span), for PlanDecodeSplits.
  int64_t MaxVisibleKeys(const std::vector<SeqSpec>& seqs) const {
    int64_t most = 0;
    for (size_t s = 0; s < kept_count_.size(); ++s) {
      const SeqSpec& seq = seqs[s / spec_.num_kv_heads];
      most = std::max<int64_t>(most, kept_count_[s] + seq.length - window_start_[s]);
    }
    return most;
  }

 private:
  CacheSpec spec_;
  int32_t window_ = 0;
  std::vector<float> k_pool_, v_pool_;
  std::vector<int32_t> page_table_, kept_page_start_, kept_count_, window_page_start_;
  std::vector<int32_t> window_base_, window_start_, flag_start_;
  std::vector<uint8_t> flags_;
  std::vector<uint8_t*> flag_ptrs_;
  std::unique_ptr<DeviceArray<uint8_t>> d_k_pool_, d_v_pool_, d_flags_;
  std::unique_ptr<DeviceArray<int32_t>> d_page_table_, d_kept_page_start_, d_kept_count_,
      d_window_page_start_, d_window_base_, d_window_start_, d_flag_start_;
};

// The step's query tokens: each sequence's last `chunk` positions, stream of KV head 0.
struct QueryTokens {
  std::vector<int32_t> token_stream, positions, chunk_first, chunk_length;
};
inline QueryTokens MakeQueryTokens(const std::vector<SeqSpec>& seqs, int num_kv_heads) {
  QueryTokens q;
  for (size_t b = 0; b < seqs.size(); ++b) {
    q.chunk_first.push_back(static_cast<int32_t>(q.positions.size()));
    q.chunk_length.push_back(seqs[b].chunk);
    for (int32_t pos = seqs[b].length - seqs[b].chunk; pos < seqs[b].length; ++pos) {
      q.token_stream.push_back(static_cast<int32_t>(b) * num_kv_heads);
      q.positions.push_back(pos);
    }
  }
  return q;
}

// The step's tokens with padding tokens (stream −1) mixed in, as a decode graph captured for a
// larger batch bucket runs them: one first, one after every third real token, two last.
// real_row[i]: the padded row of real token i. A padding token's position is 4098, a real
// position of sequence 0, whose streams are 0 … Hkv − 1 (stream 0 alone for MLA): a kernel
// that added the KV head before checking the stream would find keys there.
struct PaddedTokens {
  std::vector<int32_t> token_stream, positions, real_row;

  // Rows of `row` values, one per real token, moved to their padded rows; the padding
  // tokens' rows hold `fill`.
  std::vector<float> Spread(const std::vector<float>& real, size_t row, float fill) const {
    std::vector<float> padded(positions.size() * row, fill);
    for (size_t i = 0; i < real_row.size(); ++i) {
      std::copy_n(real.begin() + i * row, row, padded.begin() + real_row[i] * row);
    }
    return padded;
  }
};
inline PaddedTokens Pad(const QueryTokens& tokens) {
  PaddedTokens p;
  auto pad = [&] {
    p.token_stream.push_back(-1);
    p.positions.push_back(4098);
  };
  pad();
  for (size_t i = 0; i < tokens.positions.size(); ++i) {
    p.real_row.push_back(static_cast<int32_t>(p.positions.size()));
    p.token_stream.push_back(tokens.token_stream[i]);
    p.positions.push_back(tokens.positions[i]);
    if (i % 3 == 2) pad();
  }
  pad();
  pad();
  return p;
}

// A decode kernel's heads: the cache's rows of head_dim values, num_kv_heads streams a
// sequence; num_heads query heads a token, each of q_dim values in and out_dim values out.
struct DecodeHeads {
  int head_dim, num_kv_heads, num_heads, q_dim, out_dim;
};

// The sequences of a case: its own `seqs` when it has them (mixed prefill and decode steps),
// else DecodeSeqs(c.batch).
template <typename Case>
std::vector<SeqSpec> SeqsOf(const Case& c) {
  if constexpr (requires { c.seqs; }) {
    if (!c.seqs.empty()) return c.seqs;
  }
  return DecodeSeqs(c.batch);
}

// One case's decode step for a decode attention test: SeqsOf(c) over a
// SyntheticCache of the case's page_size, dense and window and of `heads`, their query tokens,
// the queries (2·N(0, 1), a peakier softmax than unit scores, as the device holds them; q_row
// values a token) and room for the CPU twin's output (out_row values a token), which the
// derived test's constructor fills. `shape` names the heads in Describe. The derived test's
// Launch runs its kernel.
class DecodeStep {
 public:
  template <typename Case>
  DecodeStep(const Case& c, kernels::DeviceDType dtype, const DecodeHeads& heads, std::string shape,
             std::mt19937& rng, std::normal_distribution<float>& normal)
      : dtype(dtype),
        heads(heads),
        spec({.page_size = c.page_size,
              .head_dim = heads.head_dim,
              .num_kv_heads = heads.num_kv_heads,
              .dense = c.dense,
              .window = c.window,
              .dtype = dtype}),
        batch(c.batch),
        shape(std::move(shape)),
        seqs(SeqsOf(c)),
        cache(spec, seqs, rng),
        tokens(MakeQueryTokens(seqs, heads.num_kv_heads)),
        num_tokens(static_cast<int>(tokens.positions.size())),
        q_row(static_cast<size_t>(heads.num_heads) * heads.q_dim),
        out_row(static_cast<size_t>(heads.num_heads) * heads.out_dim),
        q(num_tokens * q_row),
        expected(num_tokens * out_row) {
    for (float& x : q) x = 2.0f * normal(rng);
    q = Quantize(q, dtype);
  }
  virtual ~DecodeStep() = default;

  // The case and the plan, for failure messages.
  std::string Describe(const kernels::DecodeSplitPlan& plan) const {
    return std::string(Name(dtype)) + " batch " + std::to_string(batch) + shape + " page " +
           std::to_string(spec.page_size) +
           (spec.dense ? " dense" : " W " + std::to_string(spec.window)) + " splits " +
           std::to_string(plan.num_splits) + " per " + std::to_string(plan.keys_per_split);
  }

  // The kernel over `cache` for the queries q_in of the tokens (token_stream, positions) with
  // `plan`, on output and workspace buffers that start as Garbage; synchronized, the output
  // in *got. Fails fatally (wrap the call in ASSERT_NO_FATAL_FAILURE).
  void Run(const std::vector<float>& q_in, const std::vector<int32_t>& token_stream,
           const std::vector<int32_t>& positions, const kernels::DecodeSplitPlan& plan,
           std::vector<float>* got) {
    const size_t n = positions.size();
    DeviceArray<uint8_t> dq(Encode(q_in, dtype));
    DeviceArray<int32_t> dstream(token_stream), dpos(positions);
    DeviceArray<uint8_t> dout(Garbage<uint8_t>(n * out_row * kernels::DeviceDTypeSize(dtype)));
    DeviceArray<float> partial_out(Garbage<float>(n * out_row * plan.num_splits));
    DeviceArray<float> partial_lse(Garbage<float>(n * heads.num_heads * plan.num_splits));
    ASSERT_EQ(Launch({.q = dq.get(),
                      .out = dout.get(),
                      .token_stream = dstream.get(),
                      .positions = dpos.get(),
                      .num_tokens = static_cast<int>(n),
                      .plan = plan,
                      .partial_out = partial_out.get(),
                      .partial_lse = partial_lse.get()}),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    *got = Decode(dout.ToHost(), dtype);
  }

  const kernels::DeviceDType dtype;
  const DecodeHeads heads;
  const CacheSpec spec;
  const int batch;
  const std::string shape;
  const std::vector<SeqSpec> seqs;
  SyntheticCache cache;
  const QueryTokens tokens;
  const int num_tokens;
  const size_t q_row, out_row;
  std::vector<float> q, expected;

 protected:
  // One Run's device buffers and split plan.
  struct Buffers {
    const void* q;
    void* out;
    const int32_t* token_stream;
    const int32_t* positions;
    int num_tokens;
    kernels::DecodeSplitPlan plan;
    float* partial_out;
    float* partial_lse;
  };
  // The params of either decode kernel (DecodeAttentionParams, MlaDecodeAttentionParams) with
  // the fields they share set: the cache, the buffers and the split plan.
  template <typename Params>
  Params SharedParams(const Buffers& b) {
    Params p;
    p.cache = cache.CudaView();
    p.q = b.q;
    p.out = b.out;
    p.token_stream = b.token_stream;
    p.positions = b.positions;
    p.num_tokens = b.num_tokens;
    p.num_splits = b.plan.num_splits;
    p.keys_per_split = b.plan.keys_per_split;
    p.partial_out = b.partial_out;
    p.partial_lse = b.partial_lse;
    return p;
  }
  // The kernel under test, on the default stream.
  virtual cudaError_t Launch(const Buffers& b) = 0;
};

// Each case's step (StepT(case, dtype, rng, normal)) in fp32, then in bf16, all drawn from one
// generator seeded with `seed`, handed to check(step). Stops at the first fatal failure (wrap
// the call in ASSERT_NO_FATAL_FAILURE when more follows).
template <typename StepT, typename CaseT, size_t N, typename Check>
void ForEachStep(uint32_t seed, const CaseT (&cases)[N], Check check) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (kernels::DeviceDType dtype : {kernels::DeviceDType::kF32, kernels::DeviceDType::kBF16}) {
    for (const CaseT& c : cases) {
      StepT step(c, dtype, rng, normal);
      check(step);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// The step's kernel against its CPU twin, in one pass, with `planned`, with forced uneven
// splits (5 of `uneven_keys` keys) and balanced (keys_per_split 0: each query cuts its own
// keys; 64 splits is more than the short sequences' keys, so most are empty): every element
// within tolerance and the cosine distance < 1e-5. Fails fatally (wrap the call in
// ASSERT_NO_FATAL_FAILURE).
inline void ExpectEverySplitMatches(DecodeStep& step, const kernels::DecodeSplitPlan& planned,
                                    int uneven_keys) {
  const kernels::DecodeSplitPlan plans[] = {{},
                                            planned,
                                            {.num_splits = 5, .keys_per_split = uneven_keys},
                                            {.num_splits = 1, .keys_per_split = 0},
                                            {.num_splits = 2, .keys_per_split = 0},
                                            {.num_splits = 7, .keys_per_split = 0},
                                            {.num_splits = 64, .keys_per_split = 0}};
  for (const kernels::DecodeSplitPlan& plan : plans) {
    const std::string what = step.Describe(plan);
    std::vector<float> got;
    ASSERT_NO_FATAL_FAILURE(
        step.Run(step.q, step.tokens.token_stream, step.tokens.positions, plan, &got))
        << what;
    ExpectClose(got, step.expected, step.dtype, what);
  }
}

// The step's tokens padded (Pad; the padding tokens' q rows NaN, which must never be read into
// a result), in one pass and with explicit (3 splits of `uneven_keys` keys) and balanced (7)
// splits: the padding tokens' output rows are exactly 0, and the real tokens' rows still
// match the CPU twin over the real tokens alone. Fails fatally (wrap the call in
// ASSERT_NO_FATAL_FAILURE).
inline void ExpectPaddingRowsZero(DecodeStep& step, int uneven_keys) {
  const PaddedTokens padded = Pad(step.tokens);
  const std::vector<float> q = padded.Spread(step.q, step.q_row, std::nanf(""));
  const std::vector<float> expected = padded.Spread(step.expected, step.out_row, 0.0f);
  const kernels::DecodeSplitPlan plans[] = {
      {}, {.num_splits = 3, .keys_per_split = uneven_keys}, {.num_splits = 7, .keys_per_split = 0}};
  for (const kernels::DecodeSplitPlan& plan : plans) {
    const std::string what = step.Describe(plan) + " padded";
    std::vector<float> got;
    ASSERT_NO_FATAL_FAILURE(step.Run(q, padded.token_stream, padded.positions, plan, &got)) << what;
    for (size_t t = 0; t < padded.token_stream.size(); ++t) {
      if (padded.token_stream[t] >= 0) continue;
      for (size_t i = 0; i < step.out_row; ++i) {
        ASSERT_EQ(got[t * step.out_row + i], 0.0f)
            << what << " padding token " << t << " value " << i;
      }
    }
    ExpectClose(got, expected, step.dtype, what);
  }
}

}  // namespace rami::gpu_test
