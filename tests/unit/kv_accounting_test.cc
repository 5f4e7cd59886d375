// KvCache's incremental accounting (worker/kv/kv_cache.h) against a brute-force count from the
// streams and the pool's reference counts, after every step of random traffic — prefill chunks,
// decodes, forks, frees, failed steps — for dms (W 1, 5), the window policy and dense, page
// sizes 1 and 4: SequenceStatsOf (live tokens, page references, unshared pages), Stats, the
// decode page needs the commit caches (DecodePageNeeds, PagesToAppend of one token) and the
// change marks DeviceKvTables::Sync relies on (a stream whose lists or counts differ from the
// last look is marked changed).
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/kv_traffic.h"
#include "worker/kv/kv_cache.h"

namespace rami {
namespace {

using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::KvStream;
using kv::SeqId;
using kv::StepStreams;
using kv::StreamRules;

constexpr int kLayers = 2, kHeads = 3;

struct Case {
  CachePolicy policy;
  int page_size;
};

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  const CachePolicy& p = info.param.policy;
  const std::string name = p.kind == CachePolicyKind::kDms      ? "dms_w" + std::to_string(p.window)
                           : p.kind == CachePolicyKind::kWindow ? std::string("window")
                                                                : std::string("dense");
  return name + "_page" + std::to_string(info.param.page_size);
}

// What a stream looked like at the last check: a change mark is owed when any of it differs.
struct Look {
  std::vector<int32_t> kept_pages, window_pages;
  int32_t kept = 0, window_base = 0;
  bool operator==(const Look&) const = default;
};
// Stream c of a sequence: its kept list and column c of the windows.
std::vector<int32_t> WindowPages(const kv::SequenceWindows& w, int c) {
  std::vector<int32_t> pages;
  for (int64_t j = 0; j < w.num_pages(); ++j) pages.push_back(w.pages.Row(j)[c]);
  return pages;
}
Look LookAt(const KvStream& s, const kv::SequenceWindows& w, int c) {
  return {s.kept_pages, WindowPages(w, c), s.kept, w.base};
}

class KvAccountingTest : public ::testing::TestWithParam<Case> {};

TEST_P(KvAccountingTest, IncrementalSumsEqualABruteForceCount) {
  const Case c = GetParam();
  const StreamRules rules{c.policy, c.page_size};
  KvCache cache({.page_size = c.page_size, .num_pages = 400000, .allocate_storage = false}, kLayers,
                kHeads, 4, c.policy);
  testing::KvTraffic traffic(7);
  std::map<SeqId, std::vector<Look>> looks;  // the streams at the last ClearChanges
  for (int step = 0; step < 300; ++step) {
    absl::StatusOr<std::vector<engine::SequenceChunk>> chunks = traffic.Next(cache);
    ASSERT_TRUE(chunks.ok()) << chunks.status();
    if (chunks->empty()) continue;
    std::vector<SeqId> batch;
    for (const auto& chunk : *chunks) batch.push_back(chunk.seq_id);
    if (traffic.Percent() < 10) {  // a failed step
      for (SeqId id : batch) cache.AbortAppend(id);
    } else {
      if (c.policy.kind == CachePolicyKind::kDms) {  // the step's decisions
        const StepStreams s = cache.BuildStepStreams(batch);
        for (size_t b = 0; b < batch.size(); ++b) {
          const int64_t length = cache.Length(batch[b]);
          const int64_t count = static_cast<int64_t>((*chunks)[b].tokens.size());
          for (int i = 0; i < kLayers * kHeads; ++i) {
            const size_t st = b * kLayers * kHeads + i;
            for (int64_t p = std::max<int64_t>(length - 1, 0); p < length + count - 1; ++p) {
              s.Flag(st, p - s.window_base[st]) = traffic.Percent() < 60 ? 1 : 0;
            }
          }
        }
      }
      traffic.Commit(cache, *chunks);
    }
    traffic.TakeTouched();
    const std::string at = "step " + std::to_string(step);
    int64_t logical = 0, live_total = 0;
    for (SeqId id = 1; id < 10000; ++id) {
      const std::vector<KvStream>* streams = cache.StreamsOf(id);
      if (streams == nullptr) {
        looks.erase(id);
        continue;
      }
      const int64_t length = cache.Length(id);
      const kv::SequenceWindows& w = *cache.WindowsOf(id);
      int64_t live_sum = 0, live_min = INT64_MAX, live_max = 0, refs = 0, unshared = 0;
      int64_t needs[2] = {0, 0}, append = 0;
      for (size_t i = 0; i < streams->size(); ++i) {
        const KvStream& s = (*streams)[i];
        const int c = static_cast<int>(i);
        const std::vector<int32_t> window = WindowPages(w, c);
        const kv::ConstWindowFlags flags = cache.FlagsOf(id, c);
        const int64_t live = kv::LiveTokens(s, length, rules);
        const size_t next = static_cast<size_t>(s.kept / rules.page_size);
        ASSERT_EQ(s.next_kept_page, next < s.kept_pages.size() ? s.kept_pages[next] : -1)
            << at << " seq " << id << " stream " << i;
        live_sum += live;
        live_min = std::min(live_min, live);
        live_max = std::max(live_max, live);
        for (const std::vector<int32_t>* list : {&s.kept_pages, &window}) {
          refs += static_cast<int64_t>(list->size());
          for (int32_t page : *list) unshared += cache.pool().ref_count(page) == 1 ? 1 : 0;
        }
        const std::vector<kv::Leaving> leaving = kv::DecodeLeaving(length, rules, 2);
        kv::AddDecodeKeptNeeds(s, flags, w.base, length, leaving.data(), rules, 2, needs);
        kv::AddDecodeWindowNeeds(w, length, rules, 2, needs);
        append += kv::KeptPagesToAppend(s, flags, w.base, length, 1, rules) +
                  kv::WindowPagesAfter(w, length, 1, rules) - w.num_pages();
      }
      const kv::SequenceStats st = cache.SequenceStatsOf(id);
      ASSERT_EQ(st.live_sum, live_sum) << at << " seq " << id;
      ASSERT_EQ(st.live_min, live_min) << at << " seq " << id;
      ASSERT_EQ(st.live_max, live_max) << at << " seq " << id;
      ASSERT_EQ(st.page_refs, refs) << at << " seq " << id;
      ASSERT_EQ(st.unshared_pages, unshared) << at << " seq " << id;
      ASSERT_EQ(cache.PageRefs(id), refs) << at << " seq " << id;
      const SeqId one[] = {id};
      ASSERT_EQ(cache.DecodePageNeeds(one, 2), (std::vector<int64_t>{needs[0], needs[1]}))
          << at << " seq " << id;
      ASSERT_EQ(cache.PagesToAppend(id, 1), append) << at << " seq " << id;
      logical += length;
      live_total += live_sum;
      // Change marks: every stream that differs from its last look is marked; one marked for its
      // kept count alone differs in nothing else.
      const KvCache::StreamChanges changes = cache.ChangesOf(id);
      auto& last = looks[id];
      if (!changes.all) {
        ASSERT_EQ(last.size(), streams->size()) << at << " seq " << id << ": no look, not all";
        auto in = [](absl::Span<const int32_t> list, size_t i) {
          return std::find(list.begin(), list.end(), static_cast<int32_t>(i)) != list.end();
        };
        for (size_t i = 0; i < streams->size(); ++i) {
          if (in(changes.streams, i)) continue;
          Look now = LookAt((*streams)[i], w, static_cast<int>(i));
          if (in(changes.kept_only, i)) now.kept = last[i].kept;
          ASSERT_TRUE(now == last[i])
              << at << " seq " << id << " stream " << i << " changed unmarked";
        }
      }
      if (traffic.Percent() < 50) {  // Sync reads the marks now and then
        cache.ClearChanges(id);
        last.clear();
        for (size_t i = 0; i < streams->size(); ++i) {
          last.push_back(LookAt((*streams)[i], w, static_cast<int>(i)));
        }
      }
    }
    const kv::CacheStats stats = cache.Stats();
    ASSERT_EQ(stats.logical_tokens, logical) << at;
    ASSERT_EQ(stats.live_tokens, live_total) << at;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Policies, KvAccountingTest,
    ::testing::Values(Case{CachePolicy::Dms(1), 1}, Case{CachePolicy::Dms(5), 4},
                      Case{CachePolicy::Dms(5), 1}, Case{CachePolicy::Window(2, 6), 4},
                      Case{CachePolicy::Dense(), 1}, Case{CachePolicy::Dense(), 4}),
    Name);

}  // namespace
}  // namespace rami
