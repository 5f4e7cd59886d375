// `rami-bench load`: one thread per job in flight (a job is one Generate stream), an arrival
// thread that sleeps exponential gaps, and a report that puts every job in one bucket.
#include "tools/bench_load.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "rami/v1/inference.grpc.pb.h"

namespace rami::bench {
namespace {

namespace v1 = rami::v1;

// What one job will ask for, drawn by the arrival thread (so the run is reproducible).
struct JobSpec {
  int index = 0;
  int n = 1;
  int max_tokens = 8;
  std::optional<absl::Duration> abort_after;
};

// Prompts of a few lengths, numbered so that no two jobs send the same text.
std::string Prompt(int index) {
  std::string prompt = absl::StrCat("Question ", index, ": what is ", index % 97, " + ", index % 13,
                                    "? Think step by step.");
  for (int i = 0; i < index % 4; ++i) prompt += " Explain each step before the next one.";
  return prompt;
}

// Shared by the job threads, which are detached (a soak sends thousands of jobs) and hold it
// until they end.
class LoadRun : public std::enable_shared_from_this<LoadRun> {
 public:
  explicit LoadRun(const LoadOptions& o)
      : o_(o),
        stub_(v1::Inference::NewStub(
            grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials()))) {}

  LoadReport Run() {
    std::mt19937_64 rng(o_.seed);
    std::exponential_distribution<double> gap(o_.rate);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    start_ = absl::Now();
    const absl::Time stop_arrivals = start_ + o_.duration;
    absl::Time next = start_;
    absl::Time next_progress = start_ + o_.progress_every;
    for (int i = 0; i < o_.max_jobs; ++i) {
      next += absl::Seconds(gap(rng));
      if (next >= stop_arrivals) break;
      JobSpec spec{.index = i,
                   .n = o_.n_mix[rng() % o_.n_mix.size()],
                   .max_tokens = o_.max_tokens_mix[rng() % o_.max_tokens_mix.size()],
                   .abort_after = std::nullopt};
      if (unit(rng) < o_.abort_fraction) {
        spec.abort_after = unit(rng) * o_.abort_within;
      }
      while (absl::Now() < next) {
        absl::Time wake = next;
        if (o_.progress && o_.progress_every > absl::ZeroDuration()) {
          wake = std::min(wake, next_progress);
        }
        absl::SleepFor(wake - absl::Now());
        if (o_.progress && o_.progress_every > absl::ZeroDuration() &&
            absl::Now() >= next_progress) {
          o_.progress(Snapshot());
          next_progress += o_.progress_every;
        }
      }
      {
        absl::MutexLock lock(&mu_);
        ++report_.submitted;
        ++in_flight_;
      }
      std::thread([self = shared_from_this(), spec] { self->RunJob(spec); }).detach();
    }
    // Arrivals are over; report progress until the last job ends.
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
        const absl::Duration wait = o_.progress && o_.progress_every > absl::ZeroDuration()
                                        ? o_.progress_every
                                        : absl::InfiniteDuration();
        if (mu_.AwaitWithTimeout(absl::Condition(&idle), wait)) break;
      }
      o_.progress(Snapshot());
    }
    absl::MutexLock lock(&mu_);
    report_.seconds = absl::ToDoubleSeconds(last_end_ - start_);
    return report_;
  }

 private:
  std::string Snapshot() {
    absl::MutexLock lock(&mu_);
    int64_t errors = 0;
    for (const auto& [code, count] : report_.errors) errors += count;
    return absl::StrFormat(
        "t=%.0fs submitted %d in flight %d completed %d aborted %d errors %d hung %d lost %d",
        absl::ToDoubleSeconds(absl::Now() - start_), report_.submitted, in_flight_,
        report_.completed, report_.aborted, errors, report_.hung, report_.lost);
  }

  // How one job's stream ended.
  struct Outcome {
    bool result = false;
    bool abort_sent = false;
    std::optional<grpc::StatusCode> error;  // the stream's Error event
    grpc::Status status;                    // the stream's own status
    absl::Time sent, ended;
    std::optional<absl::Time> first_token;
    int64_t tokens = 0;
  };

  void RunJob(const JobSpec& spec) {
    const Outcome out = Stream(spec);  // the call's objects are gone before the count drops
    absl::MutexLock lock(&mu_);
    report_.tokens += out.tokens;
    if (out.result) {
      ++report_.completed;
      report_.ttft_ms.push_back(
          absl::ToDoubleMilliseconds(out.first_token.value_or(out.ended) - out.sent));
      report_.e2e_ms.push_back(absl::ToDoubleMilliseconds(out.ended - out.sent));
    } else if (out.error.has_value() || !out.status.ok()) {
      const grpc::StatusCode code = out.error.value_or(out.status.error_code());
      if (code == grpc::ABORTED && out.abort_sent) {
        ++report_.aborted;
      } else if (!out.error.has_value() && code == grpc::DEADLINE_EXCEEDED &&
                 out.ended >= out.sent + o_.job_timeout) {
        ++report_.hung;  // our own deadline passed with the job still open
      } else {
        ++report_.errors[absl::StatusCodeToString(static_cast<absl::StatusCode>(code))];
      }
    } else {
      ++report_.lost;
    }
    last_end_ = std::max(last_end_, out.ended);
    --in_flight_;
  }

  Outcome Stream(const JobSpec& spec) {
    Outcome out;
    v1::GenerateRequest request;
    request.set_prompt(Prompt(spec.index));
    request.set_n(spec.n);
    request.set_stream_deltas(true);
    request.mutable_sampling()->set_temperature(static_cast<float>(o_.temperature));
    request.mutable_sampling()->set_seed(o_.seed * 1000003 + static_cast<uint64_t>(spec.index));
    request.mutable_stopping()->set_max_tokens(spec.max_tokens);
    grpc::ClientContext ctx;
    out.sent = absl::Now();
    ctx.set_deadline(absl::ToChronoTime(out.sent + o_.job_timeout));
    if (!o_.api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + o_.api_key);
    std::unique_ptr<grpc::ClientReader<v1::GenerateEvent>> reader = stub_->Generate(&ctx, request);
    std::thread aborter;  // sends the Abort once the job id is known
    v1::GenerateEvent event;
    while (reader->Read(&event)) {
      if (event.has_accepted() && spec.abort_after.has_value() && !out.abort_sent) {
        out.abort_sent = true;
        aborter = std::thread([this, job_id = event.job_id(), at = out.sent + *spec.abort_after] {
          absl::SleepFor(at - absl::Now());
          grpc::ClientContext abort_ctx;
          abort_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
          if (!o_.api_key.empty()) abort_ctx.AddMetadata("authorization", "Bearer " + o_.api_key);
          v1::AbortRequest abort;
          abort.set_job_id(job_id);
          v1::AbortResponse response;
          (void)stub_->Abort(&abort_ctx, abort, &response);  // the stream says how the job ended
        });
      } else if (event.has_delta()) {
        if (!out.first_token.has_value()) out.first_token = absl::Now();
        out.tokens += event.delta().token_ids_size();
      } else if (event.has_result()) {
        out.result = true;
      } else if (event.has_error()) {
        out.error = static_cast<grpc::StatusCode>(event.error().code());
      }
    }
    out.status = reader->Finish();
    out.ended = absl::Now();
    if (aborter.joinable()) aborter.join();
    return out;
  }

  const LoadOptions o_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  absl::Time start_;
  absl::Mutex mu_;
  LoadReport report_ ABSL_GUARDED_BY(mu_);
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, double(values.size()))) - 1;
  return values[index];
}

nlohmann::json LoadReportJson(const LoadReport& r) {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, count] : r.errors) errors[code] = count;
  return {{"submitted", r.submitted},
          {"completed", r.completed},
          {"aborted", r.aborted},
          {"hung", r.hung},
          {"lost", r.lost},
          {"errors", errors},
          {"tokens", r.tokens},
          {"seconds", r.seconds},
          {"tokens_per_s", r.seconds > 0 ? r.tokens / r.seconds : 0.0},
          {"ttft_ms", {{"p50", Percentile(r.ttft_ms, 50)}, {"p99", Percentile(r.ttft_ms, 99)}}},
          {"e2e_ms", {{"p50", Percentile(r.e2e_ms, 50)}, {"p99", Percentile(r.e2e_ms, 99)}}}};
}

std::string LoadReportText(const LoadReport& r) {
  std::string errors;
  for (const auto& [code, count] : r.errors) absl::StrAppend(&errors, " ", code, ":", count);
  return absl::StrFormat(
      "jobs: %d submitted, %d completed, %d aborted as asked, %d hung, %d lost; errors:%s\n"
      "TTFT ms p50 %.1f p99 %.1f | end-to-end ms p50 %.1f p99 %.1f | %d tokens in %.1f s "
      "(%.0f tok/s)\n",
      r.submitted, r.completed, r.aborted, r.hung, r.lost, errors.empty() ? " none" : errors,
      Percentile(r.ttft_ms, 50), Percentile(r.ttft_ms, 99), Percentile(r.e2e_ms, 50),
      Percentile(r.e2e_ms, 99), r.tokens, r.seconds, r.seconds > 0 ? r.tokens / r.seconds : 0.0);
}

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& o) {
  if (o.server.empty()) return absl::InvalidArgumentError("--server: required");
  if (!(o.rate > 0 && o.rate <= 10000)) {
    return absl::InvalidArgumentError("--rate: expected (0, 10000] jobs per second");
  }
  if (o.max_jobs < 1 || o.max_jobs > 1000000) {
    return absl::InvalidArgumentError("--jobs: expected [1, 1000000]");
  }
  if (o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration_s: expected > 0");
  }
  if (o.n_mix.empty() || o.max_tokens_mix.empty()) {
    return absl::InvalidArgumentError("--n_mix and --max_tokens_mix: expected at least one value");
  }
  if (!(o.abort_fraction >= 0 && o.abort_fraction <= 1)) {
    return absl::InvalidArgumentError("--abort_fraction: expected [0, 1]");
  }
  if (o.abort_within <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--abort_within_ms: expected > 0");
  }
  if (o.job_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--job_timeout_s: expected > 0");
  }
  LoadReport report = std::make_shared<LoadRun>(o)->Run();
  if (report.submitted == 0) report.seconds = 0;
  return report;
}

}  // namespace rami::bench
