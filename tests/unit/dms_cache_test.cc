// DMS conformance (docs/dms.md §7): the KV cache + CPU kernels against a brute-force
// reference — dense fp64 attention over every token ever written, masked by the §3 rule
// (query t sees key k iff k ≤ t and (t − k ≤ W or e[k] = 0), e[k] = α_{k+1}) — through
// chunked prefill with random chunk sizes, token-by-token decode, prefill after decode, and
// forks from a frozen root. At every step: attention outputs within 1e-5, live tokens per
// stream counted from the brute-force mask, the announced page need equal to the pages the
// step takes (and the k-step-ahead decode needs for k ≤ W), and a full pool at the end.
// The same harness checks the dense and window policies.
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/paged_attention.h"
#include "tests/testing/compare.h"
#include "worker/kv/kv_cache.h"

namespace rami {

using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::SeqId;
using kv::StepStreams;
using kv::StreamRules;

namespace {

constexpr int kLayers = 2, kKvHeads = 2, kDim = 8;

struct Case {
  CachePolicy policy;
  int page_size;
  int group;  // query heads per KV head
  uint32_t seed;
};

// Everything ever written to one sequence, in position order.
struct RefSequence {
  std::vector<float> k, v;     // [position][layer][head][dim]
  std::vector<uint8_t> alpha;  // [position][layer][head] α of the token at that position
  int64_t length() const { return static_cast<int64_t>(alpha.size()) / (kLayers * kKvHeads); }
  size_t At(int64_t pos, int layer, int head) const {
    return (static_cast<size_t>(pos) * kLayers + layer) * kKvHeads + head;
  }
};

class DmsCacheTest : public ::testing::TestWithParam<Case> {
 protected:
  DmsCacheTest()
      : rules_{GetParam().policy, GetParam().page_size},
        cache_({.page_size = GetParam().page_size, .num_pages = 4000}, kLayers, kKvHeads, kDim,
               GetParam().policy) {}

  // e[k] as of a query at position t (> k): the α of token k + 1, or the position rule.
  bool Evicted(const RefSequence& ref, int64_t k, int layer, int head) const {
    const CachePolicy& p = rules_.policy;
    if (p.kind == CachePolicyKind::kWindow) return p.PositionFlag(k) != 0;
    if (p.kind == CachePolicyKind::kDense) return false;
    return ref.alpha[ref.At(k + 1, layer, head)] != 0;
  }
  bool Visible(const RefSequence& ref, int64_t t, int64_t k, int layer, int head) const {
    return k <= t && (t - k <= rules_.policy.window || !Evicted(ref, k, layer, head));
  }

  // Appends `count` random tokens to each listed sequence in one step and checks everything.
  void Step(const std::vector<std::pair<SeqId, int>>& chunks) {
    const int group = GetParam().group;
    const int q_heads = kKvHeads * group;
    std::vector<std::pair<SeqId, int64_t>> appends;
    int64_t announced = 0;
    bool all_decode = true;
    for (const auto& [id, count] : chunks) {
      appends.emplace_back(id, count);
      announced += cache_.PagesToAppend(id, count);
      all_decode &= count == 1;
    }
    const int64_t allocated_before = cache_.pool().pages_allocated_total();
    ASSERT_TRUE(cache_.ReserveAppend(appends).ok());
    const int64_t allocated = cache_.pool().pages_allocated_total() - allocated_before;
    EXPECT_EQ(allocated, announced);
    if (all_decode) {
      std::vector<SeqId> ids;
      for (const auto& c : chunks) ids.push_back(c.first);
      // Decode needs are exact: compare with the announcement made steps ahead.
      if (!pending_needs_.empty()) {
        EXPECT_EQ(allocated, pending_needs_.front())
            << "announced " << pending_ids_.size() << "-sequence need, steps ahead";
        pending_needs_.erase(pending_needs_.begin());
      }
    }

    // The step's tokens: K, V, α per layer and head; q per layer and query head.
    std::vector<SeqId> batch;
    std::vector<int32_t> positions, token_stream_base;
    for (size_t b = 0; b < chunks.size(); ++b) {
      const auto [id, count] = chunks[b];
      batch.push_back(id);
      RefSequence& ref = refs_[id];
      for (int i = 0; i < count; ++i) {
        positions.push_back(static_cast<int32_t>(ref.length()));
        token_stream_base.push_back(static_cast<int32_t>(b * kLayers * kKvHeads));
        for (int j = 0; j < kLayers * kKvHeads; ++j) ref.alpha.push_back(coin_(rng_) ? 1 : 0);
        for (int j = 0; j < kLayers * kKvHeads * kDim; ++j) {
          ref.k.push_back(normal_(rng_));
          ref.v.push_back(normal_(rng_));
        }
      }
    }
    const int tokens = static_cast<int>(positions.size());
    const StepStreams streams = cache_.BuildStepStreams(batch);
    const kernels::KvStreamsView view = cache_.View(streams);
    for (int layer = 0; layer < kLayers; ++layer) {
      std::vector<int32_t> token_stream(tokens);
      std::vector<float> k(tokens * kKvHeads * kDim), v(k.size()), q(tokens * q_heads * kDim);
      std::vector<uint8_t> alpha(tokens * kKvHeads);
      std::vector<const RefSequence*> owner(tokens);
      for (int t = 0, b = 0, i = 0; t < tokens; ++t, ++i) {
        if (i == chunks[b].second) ++b, i = 0;
        const RefSequence& ref = refs_[chunks[b].first];
        owner[t] = &ref;
        token_stream[t] = token_stream_base[t] + layer * kKvHeads;
        for (int h = 0; h < kKvHeads; ++h) {
          const size_t at = ref.At(positions[t], layer, h);
          alpha[t * kKvHeads + h] = ref.alpha[at];
          std::copy_n(&ref.k[at * kDim], kDim, &k[(t * kKvHeads + h) * kDim]);
          std::copy_n(&ref.v[at * kDim], kDim, &v[(t * kKvHeads + h) * kDim]);
        }
      }
      for (float& x : q) x = normal_(rng_);
      const bool dms = rules_.policy.kind == CachePolicyKind::kDms;
      kernels::KvWriteCpu({.cache = view,
                           .k = k.data(),
                           .v = v.data(),
                           .alpha = dms ? alpha.data() : nullptr,
                           .token_stream = token_stream.data(),
                           .positions = positions.data(),
                           .num_tokens = tokens,
                           .num_kv_heads = kKvHeads});
      std::vector<float> out(q.size());
      const float scale = 1.0f / std::sqrt(static_cast<float>(kDim));
      kernels::PagedAttentionCpu({.cache = view,
                                  .q = q.data(),
                                  .out = out.data(),
                                  .token_stream = token_stream.data(),
                                  .positions = positions.data(),
                                  .num_tokens = tokens,
                                  .num_q_heads = q_heads,
                                  .num_kv_heads = kKvHeads,
                                  .scale = scale});
      std::vector<float> expected(out.size());
      for (int t = 0; t < tokens; ++t) {
        for (int qh = 0; qh < q_heads; ++qh) {
          const int h = qh / group;
          const float* qv = &q[(t * q_heads + qh) * kDim];
          std::vector<double> w;
          std::vector<const float*> vals;
          double max_w = -INFINITY, denom = 0;
          for (int64_t key = 0; key <= positions[t]; ++key) {
            if (!Visible(*owner[t], positions[t], key, layer, h)) continue;
            const size_t at = owner[t]->At(key, layer, h) * kDim;
            double dot = 0;
            for (int i = 0; i < kDim; ++i) dot += static_cast<double>(qv[i]) * owner[t]->k[at + i];
            w.push_back(dot * scale);
            vals.push_back(&owner[t]->v[at]);
            max_w = std::max(max_w, w.back());
          }
          for (double& x : w) denom += (x = std::exp(x - max_w));
          for (int i = 0; i < kDim; ++i) {
            double acc = 0;
            for (size_t j = 0; j < w.size(); ++j) acc += w[j] * vals[j][i];
            expected[(t * q_heads + qh) * kDim + i] = static_cast<float>(acc / denom);
          }
        }
      }
      ASSERT_TRUE(
          testing::AllClose(out, expected, {.atol = 1e-5, .rtol = 1e-5},
                            "step " + std::to_string(steps_) + " layer " + std::to_string(layer)));
    }
    for (const auto& [id, count] : chunks) cache_.CommitAppend(id, count);
    ++steps_;
    CheckLive();
  }

  // Live tokens of every stream, counted from the brute-force mask of the newest query, and
  // the pages the layout must hold for them: ceil(kept / P) kept pages, and window pages from
  // the page-aligned base below the window's oldest position to the newest one.
  void CheckLive() {
    const int page = GetParam().page_size;
    for (const auto& [id, ref] : refs_) {
      const int64_t t = ref.length() - 1;
      ASSERT_EQ(cache_.Length(id), ref.length());
      const int64_t window_start = rules_.WindowStart(ref.length());
      const int64_t base = window_start / page * page;
      int64_t pages = 0;
      for (int layer = 0; layer < kLayers; ++layer) {
        for (int h = 0; h < kKvHeads; ++h) {
          int64_t live = 0, kept = 0;
          for (int64_t k = 0; k <= t; ++k) {
            live += Visible(ref, t, k, layer, h) ? 1 : 0;
            kept += k < window_start && !Evicted(ref, k, layer, h) ? 1 : 0;
          }
          pages += (kept + page - 1) / page + (ref.length() - base + page - 1) / page;
          ASSERT_EQ(cache_.StreamLive(id, layer, h), live)
              << "sequence " << id << " layer " << layer << " head " << h << " at t=" << t;
        }
      }
      EXPECT_EQ(cache_.SequenceStatsOf(id).page_refs, pages) << "sequence " << id;
    }
  }

  void Add(SeqId id) {
    ASSERT_TRUE(cache_.AddSequence(id).ok());
    refs_[id];
  }
  void Fork(SeqId root, const std::vector<SeqId>& children) {
    const int64_t bound = cache_.ForkPageBound(root) * static_cast<int64_t>(children.size());
    const int64_t before = cache_.pool().pages_allocated_total();
    ASSERT_TRUE(cache_.Fork(root, children).ok());
    EXPECT_EQ(cache_.pool().pages_allocated_total() - before, bound);
    for (SeqId c : children) refs_[c] = refs_[root];
    CheckLive();
  }
  void Free(SeqId id) {
    ASSERT_TRUE(cache_.FreeSequence(id).ok());
    refs_.erase(id);
  }
  // Announces the next k decode steps of `ids`; Step() checks them as they happen.
  void AnnounceDecode(const std::vector<SeqId>& ids, int k) {
    pending_ids_ = ids;
    pending_needs_ = cache_.DecodePageNeeds(ids, k);
  }

  StreamRules rules_;
  KvCache cache_;
  std::map<SeqId, RefSequence> refs_;
  std::mt19937 rng_{GetParam().seed};
  std::bernoulli_distribution coin_{0.7};  // eviction rate of the synthetic decisions
  std::normal_distribution<float> normal_{0.0f, 1.0f};
  std::vector<int64_t> pending_needs_;
  std::vector<SeqId> pending_ids_;
  int steps_ = 0;
};

TEST_P(DmsCacheTest, MatchesBruteForceThroughPrefillDecodeAndForks) {
  std::uniform_int_distribution<int> chunk(1, 12);
  constexpr SeqId kRoot = 100;
  ASSERT_NO_FATAL_FAILURE(Add(kRoot));
  // Prompt: chunked prefill with random chunk sizes, long enough to leave the window.
  for (int filled = 0; filled < 40;) {
    const int n = chunk(rng_);
    ASSERT_NO_FATAL_FAILURE(Step({{kRoot, n}}));
    filled += n;
  }
  ASSERT_NO_FATAL_FAILURE(Add(1));
  ASSERT_NO_FATAL_FAILURE(Step({{1, 17}}));  // a second, one-shot prompt in its own step
  ASSERT_NO_FATAL_FAILURE(Fork(kRoot, {10, 11, 12}));
  // Decode the branches (and sequence 1), announcing the next steps' page needs.
  const int ahead = std::min<int>(GetParam().policy.window, 4);
  for (int round = 0; round < 6; ++round) {
    AnnounceDecode({10, 11, 12, 1}, ahead);
    for (int s = 0; s < std::max(ahead, 1); ++s)
      ASSERT_NO_FATAL_FAILURE(Step({{10, 1}, {11, 1}, {12, 1}, {1, 1}}));
    pending_needs_.clear();
  }
  // A new turn on one branch (prefill after decode), next to decodes of the others.
  ASSERT_NO_FATAL_FAILURE(Step({{11, 9}, {10, 1}, {12, 1}}));
  // Free a branch and fork it again from the frozen root; fork a branch of a branch.
  ASSERT_NO_FATAL_FAILURE(Free(12));
  ASSERT_NO_FATAL_FAILURE(Fork(kRoot, {12}));
  ASSERT_NO_FATAL_FAILURE(Fork(11, {20, 21}));
  for (int s = 0; s < 12; ++s) ASSERT_NO_FATAL_FAILURE(Step({{12, 1}, {20, 1}, {21, 1}, {10, 1}}));
  ASSERT_NO_FATAL_FAILURE(Step({{20, 13}, {21, 2}}));
  for (SeqId id : {kRoot, SeqId{1}, SeqId{10}, SeqId{11}, SeqId{12}, SeqId{20}, SeqId{21}}) {
    ASSERT_NO_FATAL_FAILURE(Free(id));
  }
  EXPECT_EQ(cache_.pool().free_pages(), cache_.pool().num_pages()) << "pages leaked";
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (int page : {1, 3, 16}) {
    for (int group : {1, 4}) {
      for (uint32_t seed : {1u, 2u, 3u}) {
        for (int w : {1, 2, 7, 16}) cases.push_back({CachePolicy::Dms(w), page, group, seed});
        cases.push_back({CachePolicy::Window(4, 8), page, group, seed});
        cases.push_back({CachePolicy::Dense(), page, group, seed});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Policies, DmsCacheTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const CachePolicy& p = info.param.policy;
                           std::string name = p.kind == CachePolicyKind::kDms
                                                  ? "dms_w" + std::to_string(p.window)
                                              : p.kind == CachePolicyKind::kWindow ? "window"
                                                                                   : "dense";
                           return name + "_page" + std::to_string(info.param.page_size) + "_group" +
                                  std::to_string(info.param.group) + "_seed" +
                                  std::to_string(info.param.seed);
                         });

}  // namespace
}  // namespace rami
