// DeviceKvTables (worker/kv/device_kv_tables.h) under random DMS traffic driven through the
// KvCache API: chunked prefill, decode, prefill after decode, forks, frees and failed steps, for
// dms W ∈ {1, 7, 16}, the window policy and dense, page sizes 1, 3 and 16. A replica of the
// device tables is built from the deltas alone (KvTablesHost::Apply, the twin of the device
// update) and receives the DMS decisions the way the device does (KvWrite sets flags on the
// device; the host learns them at commit). After every Sync:
//  * the replica and the mirror, read the way the kernels read them (KvCacheCudaView: page lists
//    through kept/window starts, counts, window base and start, flags through flag_start),
//    equal a full rebuild from the cache for every live sequence and stream;
//  * the replica equals the mirror entry by entry wherever the mirror knows the value;
//  * the delta is O(tokens changed): writes that did not move a list are bounded per touched
//    stream by a constant plus the step's tokens and pages, and the writes that moved lists
//    are amortized — a bounded multiple of the pages the cache handed out.
#include "worker/kv/device_kv_tables.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_copy.h"
#include "worker/kv/kv_cache.h"

namespace rami {

using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::DeviceKvTables;
using kv::KvCache;
using kv::KvStream;
using kv::KvTablesDelta;
using kv::KvTablesHost;
using kv::SeqId;
using kv::StepStreams;
using kv::StreamRules;

namespace {

constexpr int kLayers = 2, kKvHeads = 3, kDim = 4;

struct Case {
  CachePolicy policy;
  int page_size;
  uint32_t seed;
};

class DeviceKvTablesTest : public ::testing::TestWithParam<Case> {
 protected:
  DeviceKvTablesTest()
      : rules_{GetParam().policy, GetParam().page_size},
        cache_({.page_size = GetParam().page_size, .num_pages = 60000, .allocate_storage = false},
               kLayers, kKvHeads, kDim, GetParam().policy),
        tables_(kLayers, kKvHeads, GetParam().page_size, GetParam().policy) {}

  bool dms() const { return rules_.policy.kind == CachePolicyKind::kDms; }

  // Syncs `touched_` (and `extra`), applies the delta to the replica and checks everything.
  void Sync(const std::vector<std::pair<SeqId, int64_t>>& step) {
    for (const auto& [id, count] : step) touched_.insert(id);
    const std::vector<SeqId> ids(touched_.begin(), touched_.end());
    touched_.clear();
    KvTablesDelta delta;
    ASSERT_TRUE(tables_.Sync(cache_, ids, &delta).ok());
    replica_.Apply(delta);
    ++syncs_;
    const std::string where = "sync " + std::to_string(syncs_);
    ASSERT_NO_FATAL_FAILURE(CheckLogical(tables_.mirror(), where + " (mirror)"));
    ASSERT_NO_FATAL_FAILURE(CheckLogical(replica_, where + " (replica)"));
    ASSERT_NO_FATAL_FAILURE(CheckReplicaMatchesMirror(where));

    // Delta size: per touched stream, a constant number of per-stream fields, the page entries
    // of the step's new tokens (+ reserved tails), and the flags from the pending one on.
    int64_t bound = 0;
    std::map<SeqId, int64_t> counts(step.begin(), step.end());
    for (SeqId id : ids) {
      const int64_t count = counts.count(id) ? counts[id] : 0;
      const int64_t since = std::max<int64_t>(1, count + last_count_[id]);
      const int64_t pages = since / rules_.page_size + 3;
      bound += int64_t{kLayers} * kKvHeads * (6 + 2 * pages + since + 2 * rules_.page_size);
      last_count_[id] = count;
    }
    const int64_t unmoved = delta.writes() - delta.moved;
    EXPECT_LE(unmoved, bound) << where;
    total_moved_ += delta.moved;
    total_unmoved_ += unmoved;
    max_table_ = std::max<int64_t>(max_table_, delta.page_table_size);
  }

  // Reads the tables as the kernels do and compares with the cache's streams.
  void CheckLogical(const KvTablesHost& t, const std::string& where) {
    const int P = rules_.page_size;
    for (const auto& [id, length] : lengths_) {
      const std::vector<KvStream>* streams = cache_.StreamsOf(id);
      ASSERT_NE(streams, nullptr);
      const kv::SequenceWindows& w = *cache_.WindowsOf(id);
      const int32_t base = tables_.StreamBase(id);
      ASSERT_GE(base, 0) << where << " sequence " << id;
      for (int i = 0; i < kLayers * kKvHeads; ++i) {
        const KvStream& st = (*streams)[i];
        const size_t s = static_cast<size_t>(base + i);
        const std::string at =
            where + " seq " + std::to_string(id) + " stream " + std::to_string(i);
        ASSERT_LT(s, t.kept_count.size()) << at;
        ASSERT_EQ(t.kept_count[s], st.kept) << at;
        for (size_t j = 0; j < st.kept_pages.size(); ++j) {
          ASSERT_EQ(t.page_table.at(t.kept_page_start[s] + j), st.kept_pages[j]) << at;
        }
        for (int64_t j = 0; j < w.num_pages(); ++j) {
          ASSERT_EQ(t.page_table.at(t.window_page_start[s] + j), w.pages.Row(j)[i]) << at;
        }
        ASSERT_EQ(t.window_base[s], w.base) << at;
        ASSERT_EQ(t.window_start[s], rules_.WindowStart(cache_.Length(id))) << at;
        if (!rules_.policy.evicts()) continue;
        // The window's flags: page-aligned inside the flags table (which holds window regions
        // only, apart from the page table).
        // Row-major per sequence: stream i is column i of page-aligned rows of S flags.
        const int64_t S = kLayers * kKvHeads;
        ASSERT_EQ(t.flag_stride, S) << at;
        ASSERT_EQ(t.flag_start[s] % (P * S), i) << at;
        const kv::ConstWindowFlags flags = cache_.FlagsOf(id, i);
        const int64_t slots = w.num_pages() * P;
        ASSERT_LE(t.flag_start[s] + (slots - 1) * S, static_cast<int64_t>(t.flags.size())) << at;
        for (int64_t j = 0; j < slots; ++j) {
          ASSERT_EQ(t.flags.at(t.flag_start[s] + j * S), flags[j]) << at << " flag " << j;
        }
      }
    }
  }

  void CheckReplicaMatchesMirror(const std::string& where) {
    const KvTablesHost& m = tables_.mirror();
    ASSERT_EQ(replica_.page_table, m.page_table) << where;
    ASSERT_EQ(replica_.kept_page_start, m.kept_page_start) << where;
    ASSERT_EQ(replica_.kept_count, m.kept_count) << where;
    ASSERT_EQ(replica_.window_page_start, m.window_page_start) << where;
    ASSERT_EQ(replica_.window_base, m.window_base) << where;
    ASSERT_EQ(replica_.window_start, m.window_start) << where;
    ASSERT_EQ(replica_.flag_start, m.flag_start) << where;
    ASSERT_EQ(replica_.flag_stride, m.flag_stride) << where;
    ASSERT_EQ(replica_.flags.size(), m.flags.size()) << where;
    for (size_t i = 0; i < m.flags.size(); ++i) {
      if (m.flags[i] == DeviceKvTables::kUnknownFlag) continue;
      ASSERT_EQ(replica_.flags[i], m.flags[i]) << where << " flag " << i;
    }
  }

  // One step: reserve, sync, "run" (the device's flag writes, the host's decisions), then
  // commit — or abort with probability `fail`.
  void Step(const std::vector<std::pair<SeqId, int64_t>>& step, bool fail) {
    ASSERT_TRUE(cache_.ReserveAppend(step).ok());
    ASSERT_NO_FATAL_FAILURE(Sync(step));
    std::vector<SeqId> batch;
    for (const auto& [id, count] : step) {
      batch.push_back(id);
      tables_.ExpectDeviceFlags(id, count);
    }
    if (dms()) {
      // KvWrite with α: token t's decision becomes the flag of position t − 1, on the device
      // (the replica) and, through the decisions copied back, on the host.
      const StepStreams host = cache_.BuildStepStreams(batch);
      for (size_t b = 0; b < step.size(); ++b) {
        const auto [id, count] = step[b];
        const int64_t length = cache_.Length(id);
        const int32_t first = tables_.StreamBase(id);
        for (int i = 0; i < kLayers * kKvHeads; ++i) {
          const size_t hs = b * kLayers * kKvHeads + i;
          const int32_t ds = first + i;
          for (int64_t p = std::max<int64_t>(length, 1); p < length + count; ++p) {
            const uint8_t alpha = coin_(rng_) ? 1 : 0;
            host.Flag(hs, p - 1 - host.window_base[hs]) = alpha;
            replica_.flags.at(replica_.flag_start[ds] +
                              (p - 1 - replica_.window_base[ds]) * replica_.flag_stride) = alpha;
          }
        }
      }
    }
    for (const auto& [id, count] : step) {
      if (fail) {
        cache_.AbortAppend(id);
      } else {
        cache_.CommitAppend(id, count);
        lengths_[id] += count;
      }
      touched_.insert(id);
    }
  }

  StreamRules rules_;
  KvCache cache_;
  DeviceKvTables tables_;
  KvTablesHost replica_;
  std::map<SeqId, int64_t> lengths_;  // live sequences
  std::set<SeqId> touched_;           // changed since the last Sync
  std::map<SeqId, int64_t> last_count_;
  std::mt19937 rng_{GetParam().seed};
  std::bernoulli_distribution coin_{0.75};
  int syncs_ = 0;
  int64_t total_moved_ = 0, total_unmoved_ = 0, max_table_ = 0, fork_entries_ = 0;
};

TEST_P(DeviceKvTablesTest, DeltasKeepTheDeviceTablesEqualToTheCache) {
  std::uniform_int_distribution<int> op(0, 99), chunk(1, 40), pick(0, 1 << 20);
  SeqId next_id = 1;
  int64_t full_sum = 0;  // entries a whole-table upload per round would have sent
  for (int round = 0; round < 220; ++round) {
    const int r = op(rng_);
    std::vector<SeqId> live;
    for (const auto& [id, len] : lengths_) live.push_back(id);
    if (live.size() < 2 || (r < 8 && live.size() < 10)) {
      const SeqId id = next_id++;
      ASSERT_TRUE(cache_.AddSequence(id).ok());
      lengths_[id] = 0;
      touched_.insert(id);
      ASSERT_NO_FATAL_FAILURE(Step({{id, chunk(rng_)}}, false));
    } else if (r < 14 && live.size() < 10) {  // fork one sequence into 1–2 children
      const SeqId parent = live[pick(rng_) % live.size()];
      std::vector<SeqId> children(1 + pick(rng_) % 2);
      for (SeqId& c : children) c = next_id++;
      ASSERT_TRUE(cache_.Fork(parent, children).ok());
      for (SeqId c : children) {
        lengths_[c] = lengths_[parent];
        touched_.insert(c);
        fork_entries_ += cache_.SequenceStatsOf(c).page_refs * (1 + rules_.page_size);
      }
    } else if (r < 19) {  // free one
      const SeqId id = live[pick(rng_) % live.size()];
      ASSERT_TRUE(cache_.FreeSequence(id).ok());
      lengths_.erase(id);
      touched_.insert(id);
    } else {  // a step over a random subset: mostly decode, sometimes a chunk of prefill
      std::vector<std::pair<SeqId, int64_t>> step;
      for (SeqId id : live) {
        if (op(rng_) < 25) continue;
        step.emplace_back(id, op(rng_) < 15 ? chunk(rng_) : 1);
      }
      if (step.empty()) continue;
      ASSERT_NO_FATAL_FAILURE(Step(step, op(rng_) < 6));
    }
    full_sum +=
        static_cast<int64_t>(tables_.mirror().page_table.size() + tables_.mirror().flags.size() +
                             6 * tables_.mirror().kept_count.size());
  }
  ASSERT_NO_FATAL_FAILURE(Sync({}));  // the last commits and frees
  // Moves are amortized: a few writes per page the cache handed out (each page enters a list
  // once; a list moves after at least half its length in new pages), with its flags, plus the
  // whole lists of fork children (a new sequence's tables are new).
  const int64_t pages = cache_.pool().pages_allocated_total();
  EXPECT_LE(total_moved_, 4 * (pages + 1) * (1 + rules_.page_size) + fork_entries_)
      << "moved " << total_moved_ << " for " << pages << " pages";
  EXPECT_LT(total_unmoved_ + total_moved_, full_sum);
  std::printf(
      "[%s P=%d] %d syncs: %lld writes (%lld moving lists) vs %lld for whole uploads; "
      "%lld pages handed out, table %lld entries\n",
      rules_.policy.ToString().c_str(), rules_.page_size, syncs_,
      static_cast<long long>(total_unmoved_ + total_moved_), static_cast<long long>(total_moved_),
      static_cast<long long>(full_sum), static_cast<long long>(pages),
      static_cast<long long>(max_table_));
}

// A long decode of a steady batch: the per-step delta stays flat while the tables grow.
TEST_P(DeviceKvTablesTest, DecodeDeltaDoesNotGrowWithTheTable) {
  constexpr int kBatch = 6;
  std::vector<std::pair<SeqId, int64_t>> prefill, decode;
  for (SeqId id = 1; id <= kBatch; ++id) {
    ASSERT_TRUE(cache_.AddSequence(id).ok());
    lengths_[id] = 0;
    prefill.emplace_back(id, 40 + id);
    decode.emplace_back(id, 1);
  }
  ASSERT_NO_FATAL_FAILURE(Step(prefill, false));
  int64_t worst = 0;
  for (int s = 0; s < 300; ++s) {
    KvTablesDelta delta;
    ASSERT_TRUE(cache_.ReserveAppend(decode).ok());
    std::vector<SeqId> ids;
    for (const auto& [id, c] : decode) ids.push_back(id);
    ASSERT_TRUE(tables_.Sync(cache_, ids, &delta).ok());
    replica_.Apply(delta);
    ASSERT_NO_FATAL_FAILURE(CheckLogical(replica_, "decode " + std::to_string(s)));
    // Per stream and step: the counts, window start/base/start offsets, one page entry when a
    // page fills, and the new tokens' flags (the pending one, the decision, a fresh page's).
    // The first decode step also carries the prefill's decisions.
    if (s > 0) {
      worst = std::max(worst, delta.writes() - delta.moved);
      EXPECT_LE(delta.writes() - delta.moved,
                int64_t{kBatch} * kLayers * kKvHeads * (6 + 2 + 2 + rules_.page_size))
          << "decode step " << s;
    }
    for (const auto& [id, c] : decode) {
      tables_.ExpectDeviceFlags(id, 1);
      cache_.CommitAppend(id, 1);
      lengths_[id] += 1;
    }
  }
  std::printf("[%s P=%d] decode: table %zu entries, worst step %lld writes\n",
              rules_.policy.ToString().c_str(), rules_.page_size,
              tables_.mirror().page_table.size(), static_cast<long long>(worst));
}

// A Sync that would grow a table past its offsets' limit is refused before it changes anything,
// and the tables serve again once sequences are freed.
TEST(DeviceKvTablesLimits, RefusesToOutgrowItsOffsetsAndChangesNothing) {
  constexpr int kPage = 4;
  const CachePolicy policy = CachePolicy::Dms(8);
  KvCache cache({.page_size = kPage, .num_pages = 100000, .allocate_storage = false}, kLayers,
                kKvHeads, kDim, policy);
  DeviceKvTables tables(kLayers, kKvHeads, kPage, policy, /*max_entries=*/8192);
  KvTablesHost replica;
  SeqId next = 1;
  absl::Status status;
  for (; next < 1000 && status.ok(); ++next) {
    ASSERT_TRUE(cache.AddSequence(next).ok());
    ASSERT_TRUE(cache.ReserveAppend({{next, 64}}).ok());
    const KvTablesHost before = tables.mirror();
    KvTablesDelta delta;
    status = tables.Sync(cache, {next}, &delta);
    if (status.ok()) {
      replica.Apply(delta);
      cache.CommitAppend(next, 64);
      continue;
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_NE(status.message().find("int32 offsets"), std::string::npos) << status;
    EXPECT_EQ(delta.writes(), 0);
    EXPECT_EQ(tables.mirror().page_table, before.page_table);
    EXPECT_EQ(tables.mirror().flags, before.flags);
    EXPECT_EQ(tables.StreamBase(next), -1);
    cache.AbortAppend(next);
  }
  ASSERT_FALSE(status.ok()) << "the limit was never reached";
  EXPECT_LE(tables.mirror().page_table.size(), 8192u);
  EXPECT_LE(tables.mirror().flags.size(), 8192u);
  // Freeing the first sequences returns their regions: the refused sequence now fits.
  const SeqId refused = next - 1;
  std::vector<SeqId> freed;
  for (SeqId id = 1; id <= 8; ++id) {
    ASSERT_TRUE(cache.FreeSequence(id).ok());
    freed.push_back(id);
  }
  ASSERT_TRUE(cache.ReserveAppend({{refused, 64}}).ok());
  freed.push_back(refused);
  KvTablesDelta delta;
  ASSERT_TRUE(tables.Sync(cache, freed, &delta).ok());
  EXPECT_GE(tables.StreamBase(refused), 0);
}

// The shape that overflowed the old tables: a 119 GiB pool of a head_dim-64 model (Llama-3.2-1B:
// 16 layers x 8 KV heads, K+V bf16, 32 KiB a token) holds ~3.9M tokens, 0.5e9 (stream, token)
// slots; 136 sequences of 32K tokens (dense: every token's page listed) need 7.1e7 entries in
// the page table with its regions' slack, which doubles to 1.3e8 — page_table x page_size past
// 2^31, where the old tables (flags parallel to the page table) aborted the worker. It syncs,
// and reads back right.
TEST(DeviceKvTablesLimits, A119GiBPoolOfAHeadDim64ModelFitsItsTables) {
  constexpr int kLayers1B = 16, kHeads1B = 8, kPage = 16, kSeqs = 136, kTokens = 32768;
  const CachePolicy policy = CachePolicy::Dense();
  const int64_t pages = int64_t{kSeqs} * kLayers1B * kHeads1B * (kTokens / kPage);
  KvCache cache(
      {.page_size = kPage, .num_pages = static_cast<int>(pages), .allocate_storage = false},
      kLayers1B, kHeads1B, 64, policy);
  DeviceKvTables tables(kLayers1B, kHeads1B, kPage, policy);
  std::vector<SeqId> ids;
  for (SeqId id = 0; id < kSeqs; ++id) {
    ASSERT_TRUE(cache.AddSequence(id).ok());
    ASSERT_TRUE(cache.ReserveAppend({{id, kTokens}}).ok());
    cache.CommitAppend(id, kTokens);
    ids.push_back(id);
  }
  EXPECT_EQ(cache.pool().free_pages(), 0);
  KvTablesDelta delta;
  ASSERT_TRUE(tables.Sync(cache, ids, &delta).ok());
  const KvTablesHost& t = tables.mirror();
  EXPECT_GE(static_cast<int64_t>(t.page_table.size()) * kPage, int64_t{1} << 31);  // old limit
  EXPECT_LE(static_cast<int64_t>(t.page_table.size()), DeviceKvTables::kMaxEntries);
  EXPECT_GE(static_cast<int64_t>(delta.page_table.size()), pages - 1);  // page 0 meets a 0
  // Spot checks of the kernels' view: every 97th stream's pages, first and last.
  for (SeqId id : {SeqId{0}, SeqId{63}, SeqId{kSeqs - 1}}) {
    const kv::SequenceWindows& w = *cache.WindowsOf(id);
    ASSERT_EQ(w.num_pages(), kTokens / kPage);
    for (int i = 0; i < kLayers1B * kHeads1B; i += 37) {
      const int64_t s = tables.StreamBase(id) + i;
      EXPECT_EQ(t.page_table[t.window_page_start[s]], w.pages.Row(0)[i]);
      EXPECT_EQ(t.page_table[t.window_page_start[s] + w.num_pages() - 1],
                w.pages.Row(w.num_pages() - 1)[i]);
    }
  }
}

// The pool's copy log (KvPagePool::set_copy_log) replayed on a copy of the storage taken before
// each step — what the CUDA backend does on its device pool with KvCopyCuda — gives the pool
// after the step: promotions at commit and fork tails, in order.
TEST(KvCopyLogTest, ReplayingTheLogReproducesThePool) {
  constexpr int kPage = 3, kDim = 4;
  KvCache cache({.page_size = kPage, .num_pages = 3000}, 2, 2, kDim, CachePolicy::Dms(2));
  std::vector<kernels::KvCopyOp> log;
  cache.pool().set_copy_log(&log);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  const size_t elems = static_cast<size_t>(3000) * kPage * kDim;
  for (size_t i = 0; i < elems; ++i) {
    cache.pool().k_data()[i] = normal(rng);
    cache.pool().v_data()[i] = normal(rng);
  }
  ASSERT_TRUE(cache.AddSequence(1).ok());
  SeqId next = 2;
  for (int step = 0; step < 60; ++step) {
    std::vector<float> k(cache.pool().k_data(), cache.pool().k_data() + elems);
    std::vector<float> v(cache.pool().v_data(), cache.pool().v_data() + elems);
    log.clear();
    if (step % 7 == 6) {
      ASSERT_TRUE(cache.Fork(1, {next++}).ok());
    }
    const std::pair<SeqId, int64_t> append[] = {{1, step % 5 == 0 ? 7 : 1}};
    ASSERT_TRUE(cache.ReserveAppend(append).ok());
    const SeqId one[] = {1};
    const StepStreams st = cache.BuildStepStreams(one);
    const int64_t length = cache.Length(1);
    for (size_t s = 0; s < st.flag_columns.size(); ++s) {
      for (int64_t p = std::max<int64_t>(length, 1); p < length + append[0].second; ++p) {
        st.Flag(s, p - 1 - st.window_base[s]) = rng() % 3 == 0 ? 1 : 0;
      }
    }
    cache.CommitAppend(1, append[0].second);
    for (const kernels::KvCopyOp& op : log) {  // in order: later ops may read earlier ones
      kernels::KvCopyCpu({.k_pool = k.data(),
                          .v_pool = v.data(),
                          .ops = &op,
                          .num_ops = 1,
                          .page_size = kPage,
                          .head_dim = kDim,
                          .dtype = kernels::DeviceDType::kF32});
    }
    ASSERT_TRUE(std::equal(k.begin(), k.end(), cache.pool().k_data())) << "step " << step;
    ASSERT_TRUE(std::equal(v.begin(), v.end(), cache.pool().v_data())) << "step " << step;
  }
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (int page : {1, 3, 16}) {
    for (uint32_t seed : {1u, 2u}) {
      for (int w : {1, 7, 16}) cases.push_back({CachePolicy::Dms(w), page, seed});
      cases.push_back({CachePolicy::Window(4, 8), page, seed});
      cases.push_back({CachePolicy::Dense(), page, seed});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Policies, DeviceKvTablesTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const CachePolicy& p = info.param.policy;
                           std::string name = p.kind == CachePolicyKind::kDms
                                                  ? "dms_w" + std::to_string(p.window)
                                              : p.kind == CachePolicyKind::kWindow ? "window"
                                                                                   : "dense";
                           return name + "_page" + std::to_string(info.param.page_size) + "_seed" +
                                  std::to_string(info.param.seed);
                         });

}  // namespace
}  // namespace rami
