// `rami-bench prefix`: shared-prefix traffic with the cache off and on, then the pages one
// cached prefix holds, measured against the formula.
#include "tools/bench_prefix.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "rami/v1/inference.grpc.pb.h"
#include "tools/bench_load.h"

namespace rami::bench {
namespace {

namespace v1 = rami::v1;

class Client {
 public:
  explicit Client(const PrefixBenchOptions& o)
      : o_(o),
        stub_(v1::Inference::NewStub(
            grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials()))) {}

  void Authorize(grpc::ClientContext& ctx) const {
    if (!o_.api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + o_.api_key);
  }

  absl::StatusOr<v1::ServerInfo> Info() const {
    grpc::ClientContext ctx;
    Authorize(ctx);
    v1::ServerInfo info;
    grpc::Status s = stub_->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
    if (!s.ok()) return absl::UnavailableError("GetServerInfo: " + s.error_message());
    if (info.groups_size() == 0) return absl::UnavailableError("the coordinator has no group");
    return info;
  }

  absl::StatusOr<v1::ModelInfo> Model() const {
    grpc::ClientContext ctx;
    Authorize(ctx);
    v1::ListModelsResponse models;
    grpc::Status s = stub_->ListModels(&ctx, v1::ListModelsRequest(), &models);
    if (!s.ok() || models.models_size() == 0) {
      return absl::UnavailableError("ListModels: " + s.error_message());
    }
    return models.models(0);
  }

  struct Outcome {
    bool ok = false;
    std::string error;  // the Error event's or the stream's message when not ok
    double ttft_ms = 0;
    int64_t cached_tokens = 0;
  };

  Outcome Run(const v1::GenerateRequest& request) const {
    grpc::ClientContext ctx;
    Authorize(ctx);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));
    const absl::Time sent = absl::Now();
    std::unique_ptr<grpc::ClientReader<v1::GenerateEvent>> reader = stub_->Generate(&ctx, request);
    Outcome out;
    std::optional<absl::Time> first;
    v1::GenerateEvent event;
    while (reader->Read(&event)) {
      if (event.has_delta() && !first.has_value()) first = absl::Now();
      if (event.has_result()) {
        out.ok = true;
        out.cached_tokens = event.result().usage().cached_prompt_tokens();
      }
      if (event.has_error()) out.error = event.error().message();
    }
    grpc::Status status = reader->Finish();
    if (!out.ok && out.error.empty()) out.error = status.error_message();
    out.ttft_ms = absl::ToDoubleMilliseconds(first.value_or(absl::Now()) - sent);
    return out;
  }

 private:
  const PrefixBenchOptions& o_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

std::vector<int32_t> RandomTokens(std::mt19937_64& rng, int count, int vocab) {
  std::vector<int32_t> t(count);
  for (int32_t& id : t) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return t;
}

v1::GenerateRequest Request(const std::vector<int32_t>& prompt, int n, int max_tokens,
                            uint64_t seed) {
  v1::GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Assign(prompt.begin(), prompt.end());
  r.set_n(n);
  r.mutable_sampling()->set_temperature(1.0f);
  r.mutable_sampling()->set_seed(seed);
  r.mutable_stopping()->set_max_tokens(max_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  r.set_stream_deltas(true);
  return r;
}

absl::StatusOr<PrefixTrafficRow> Traffic(const Client& client, const PrefixBenchOptions& o,
                                         int vocab, bool cache) {
  std::mt19937_64 rng(o.seed);
  const std::vector<int32_t> prefix = RandomTokens(rng, o.prefix_tokens, vocab);
  std::vector<v1::GenerateRequest> jobs;
  const int questions = !cache && o.questions_without_cache >= 0
                            ? std::min(o.questions, o.questions_without_cache)
                            : o.questions;
  const std::string salt = absl::StrCat("rami-bench prefix ", absl::ToUnixNanos(absl::Now()));
  for (int i = 0; i < questions; ++i) {
    std::vector<int32_t> prompt = prefix;
    for (int32_t t : RandomTokens(rng, o.question_tokens, vocab)) prompt.push_back(t);
    v1::GenerateRequest r = Request(prompt, o.n, o.max_tokens, o.seed + i);
    r.add_cache_boundaries(o.prefix_tokens);
    r.set_cache_salt(salt);
    r.set_skip_prefix_cache(!cache);
    jobs.push_back(std::move(r));
  }
  absl::StatusOr<v1::ServerInfo> before = client.Info();
  if (!before.ok()) return before.status();
  PrefixTrafficRow row;
  row.mode = cache ? "cache on" : "cache off";
  absl::Mutex mu;
  std::atomic<int> next{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o.concurrency); ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < static_cast<int>(jobs.size()); i = next++) {
        const Client::Outcome out = client.Run(jobs[i]);
        absl::MutexLock lock(&mu);
        ++row.jobs;
        if (!out.ok) {
          ++row.failed;
          continue;
        }
        row.ttft_ms.push_back(out.ttft_ms);
        row.cached_tokens += out.cached_tokens;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  row.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  absl::StatusOr<v1::ServerInfo> after = client.Info();
  if (!after.ok()) return after.status();
  row.prefill_tokens = after->prefill_tokens() - before->prefill_tokens();
  return row;
}

absl::StatusOr<PrefixCapacity> Capacity(const Client& client, const PrefixBenchOptions& o,
                                        int vocab, const std::string& policy) {
  std::mt19937_64 rng(o.seed ^ 0x5eedULL);
  const std::string salt = absl::StrCat("rami-bench fill ", absl::ToUnixNanos(absl::Now()));
  const int half = std::max(1, o.fill / 2);
  int64_t free_half = 0;
  absl::StatusOr<v1::ServerInfo> info = client.Info();
  if (!info.ok()) return info.status();
  const int64_t evicted_before = info->prefix_cache().evictions();
  for (int i = 1; i <= 2 * half; ++i) {
    v1::GenerateRequest r = Request(RandomTokens(rng, o.prefix_tokens, vocab), 1, 1, o.seed);
    r.set_cache_salt(salt);
    if (const Client::Outcome out = client.Run(r); !out.ok) {
      return absl::InternalError(absl::StrCat("fill job ", i, " failed: ", out.error));
    }
    if (i == half || i == 2 * half) {
      info = client.Info();
      if (!info.ok()) return info.status();
      if (i == half) free_half = info->groups(0).free_pages();
    }
  }
  const v1::WorkerGroupInfo& g = info->groups(0);
  PrefixCapacity c;
  c.policy = policy;
  c.entries = half;
  c.pages_per_entry = static_cast<double>(free_half - g.free_pages()) / half;
  c.eviction_rate = g.eviction_rate();
  c.pool_pages = g.num_pages();
  const double L = o.prefix_tokens, P = std::max(1, g.page_size());
  auto formula = [&](double alpha, int64_t window) {
    if (window <= 0 || L <= window + 1) return g.streams() * std::ceil(L / P);
    const double kept = (1.0 - alpha) * (L - window - 1);
    return g.streams() * (std::ceil(kept / P) + std::ceil((window + 1) / P));
  };
  c.formula_pages = formula(c.eviction_rate, g.dms_window());
  const double dense = formula(0, 0);
  if (c.pages_per_entry > 0)
    c.fit_measured = static_cast<int64_t>(c.pool_pages / c.pages_per_entry);
  c.fit_formula = static_cast<int64_t>(c.pool_pages / c.formula_pages);
  c.fit_dense = static_cast<int64_t>(c.pool_pages / dense);
  if (info->prefix_cache().evictions() > evicted_before) {
    return absl::FailedPreconditionError(
        absl::StrCat("the cache evicted entries while filling (",
                     info->prefix_cache().evictions() - evicted_before,
                     "): give the coordinator a larger --prefix_cache_fraction or KV pool, or a "
                     "smaller --fill"));
  }
  return c;
}

}  // namespace

absl::StatusOr<PrefixReport> RunPrefixBench(const PrefixBenchOptions& o) {
  if (o.prefix_tokens < 1 || o.questions < 1 || o.question_tokens < 1 || o.n < 1 ||
      o.max_tokens < 1) {
    return absl::InvalidArgumentError(
        "prefix: --prefix_tokens, --questions, --question_tokens, --n and --max_tokens must be "
        ">= 1");
  }
  Client client(o);
  absl::StatusOr<v1::ModelInfo> model = client.Model();
  if (!model.ok()) return model.status();
  PrefixReport report;
  report.model = model->name();
  for (bool cache : {false, true}) {
    absl::StatusOr<PrefixTrafficRow> row = Traffic(client, o, model->vocab_size(), cache);
    if (!row.ok()) return row.status();
    report.rows.push_back(std::move(*row));
  }
  if (o.fill > 0) {
    absl::StatusOr<PrefixCapacity> c =
        Capacity(client, o, model->vocab_size(), model->cache_policy());
    if (!c.ok()) return c.status();
    report.capacity = *c;
  }
  return report;
}

nlohmann::json PrefixReportJson(const PrefixBenchOptions& o, const PrefixReport& r) {
  nlohmann::json j = {{"benchmark", "prefix"},
                      {"model", r.model},
                      {"prefix_tokens", o.prefix_tokens},
                      {"questions", o.questions},
                      {"question_tokens", o.question_tokens},
                      {"n", o.n},
                      {"max_tokens", o.max_tokens},
                      {"concurrency", o.concurrency},
                      {"rows", nlohmann::json::array()}};
  for (const PrefixTrafficRow& row : r.rows) {
    j["rows"].push_back({{"mode", row.mode},
                         {"jobs", row.jobs},
                         {"failed", row.failed},
                         {"prefill_tokens", row.prefill_tokens},
                         {"cached_tokens", row.cached_tokens},
                         {"ttft_p50_ms", Percentile(row.ttft_ms, 50)},
                         {"ttft_p99_ms", Percentile(row.ttft_ms, 99)},
                         {"seconds", row.seconds}});
  }
  if (o.fill > 0) {
    const PrefixCapacity& c = r.capacity;
    j["capacity"] = {{"policy", c.policy},
                     {"entries_measured", c.entries},
                     {"pages_per_entry", c.pages_per_entry},
                     {"formula_pages_per_entry", c.formula_pages},
                     {"eviction_rate", c.eviction_rate},
                     {"pool_pages", c.pool_pages},
                     {"fit_measured", c.fit_measured},
                     {"fit_formula", c.fit_formula},
                     {"fit_dense_formula", c.fit_dense}};
  }
  return j;
}

std::string PrefixReportText(const PrefixBenchOptions& o, const PrefixReport& r) {
  std::string out = absl::StrFormat(
      "prefix: model %s, a %d-token shared prefix + %d questions of %d tokens, n=%d, "
      "max_tokens=%d, %d in flight\n",
      r.model, o.prefix_tokens, o.questions, o.question_tokens, o.n, o.max_tokens, o.concurrency);
  absl::StrAppendFormat(&out, "%-10s %6s %7s %15s %14s %12s %12s %9s\n", "mode", "jobs", "failed",
                        "prefill tokens", "cached tokens", "TTFT p50 ms", "TTFT p99 ms", "seconds");
  for (const PrefixTrafficRow& row : r.rows) {
    absl::StrAppendFormat(&out, "%-10s %6d %7d %15d %14d %12.1f %12.1f %9.1f\n", row.mode, row.jobs,
                          row.failed, row.prefill_tokens, row.cached_tokens,
                          Percentile(row.ttft_ms, 50), Percentile(row.ttft_ms, 99), row.seconds);
  }
  if (o.fill > 0) {
    const PrefixCapacity& c = r.capacity;
    absl::StrAppendFormat(
        &out,
        "capacity (%s, %d-token prefixes, %d measured): %.1f pages each on the workers, the "
        "formula %.1f (eviction rate %.3f); a %d-page pool holds %d (measured), %d (formula), "
        "%d dense\n",
        c.policy, o.prefix_tokens, c.entries, c.pages_per_entry, c.formula_pages, c.eviction_rate,
        c.pool_pages, c.fit_measured, c.fit_formula, c.fit_dense);
  }
  return out;
}

}  // namespace rami::bench
