// A synthetic DMS-layout cache for the attention tests, built directly in the state a step
// leaves it in after its K/V write (dms.md §4, worker/kv_stream.cc geometry): per (sequence,
// KV head) stream, a kept list of the tokens that left the window with flag 0 and a window
// from the page-aligned window_base, with random flags (7 of 8 evicted), the newest token's
// flag pending (0), stale slots before window_start filled with garbage that must never be
// read, and pages scattered over the pool. Exposes the same cache as the CPU twin's view
// (fp32 host pools) and as the CUDA view (device pools of the tested dtype).
#pragma once

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

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

}  // namespace rami::gpu_test
