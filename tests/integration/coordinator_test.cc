// End to end on loopback: rami-coordinator + two rami-worker processes (TP=2, CPU, Gloo) with
// the tiny DMS model and its byte-level tokenizer, driven through rami.v1.Inference.
#include <atomic>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "rami/v1/inference.grpc.pb.h"
#include "rami/worker/v1/worker.grpc.pb.h"
#include "tests/integration/inference_client.h"
#include "tests/integration/worker_process.h"
#include "tests/testing/safetensors_writer.h"

namespace rami::testing {
namespace {

namespace v1 = rami::v1;

// Two workers and a coordinator over them.
struct Deployment {
  explicit Deployment(const std::vector<std::string>& coordinator_flags = {}) {
    workers.push_back(std::make_unique<WorkerProcess>());
    workers.push_back(std::make_unique<WorkerProcess>());
    if (!workers[0]->ok() || !workers[1]->ok()) return;
    std::vector<std::string> flags = {
        "--workers=" + workers[0]->address() + "," + workers[1]->address(),
        "--model_dir=" + ModelDir(),
        "--page_size=4",
        "--kv_cache_bytes=8388608",
        "--collective_timeout=10",
        "--worker_auth_token_file=" + TestAuthTokenFile()};
    flags.insert(flags.end(), coordinator_flags.begin(), coordinator_flags.end());
    coordinator = std::make_unique<WorkerProcess>(RAMI_COORDINATOR_BINARY, flags, 60);
    if (!coordinator->ok()) return;
    stub = v1::Inference::NewStub(
        grpc::CreateChannel(coordinator->address(), grpc::InsecureChannelCredentials()));
  }
  bool ok() const { return stub != nullptr; }

  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::unique_ptr<WorkerProcess> coordinator;
  std::unique_ptr<v1::Inference::Stub> stub;
};

TEST(Coordinator, BestOfEightStreamsBranchesAndVotes) {
  Deployment d;
  ASSERT_TRUE(d.ok());
  const JobOutput out = RunJob(*d.stub, BestOf(8, "The answer is", 24, 1.0f));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_FALSE(out.events.empty());
  EXPECT_TRUE(out.events.front().has_accepted());
  EXPECT_EQ(out.events.front().accepted().prompt_tokens(), 13);  // byte-level: one per byte
  ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
  ASSERT_EQ(out.finished.size(), 8u);
  ASSERT_EQ(out.result->branches_size(), 8);
  // The votes, recomputed from the streamed texts with the same extractor.
  std::map<std::string, int> votes;
  const std::regex last_lower("([a-z])[^a-z]*$");
  for (const auto& [branch, f] : out.finished) {
    EXPECT_EQ(out.delta_text.at(branch), f.text()) << "branch " << branch;
    EXPECT_EQ(static_cast<int>(out.delta_ids.at(branch).size()), f.tokens());
    EXPECT_EQ(f.tokens(), 24);
    EXPECT_EQ(f.reason(), v1::MAX_TOKENS);
    std::smatch m;
    const std::string answer = std::regex_search(f.text(), m, last_lower) ? m[1].str() : "";
    EXPECT_EQ(answer, f.answer()) << "branch " << branch << " text " << f.text();
    ++votes[answer];
  }
  int total = 0;
  for (const v1::Vote& v : out.result->votes()) {
    EXPECT_EQ(v.count(), votes[v.answer()]) << v.answer();
    total += v.count();
  }
  EXPECT_EQ(total, 8);
  EXPECT_EQ(out.result->answer(), out.result->votes(0).answer());
  EXPECT_EQ(out.result->usage().generated_tokens(), 8 * 24);
  EXPECT_GT(out.result->usage().peak_kv_bytes(), 0);
  EXPECT_GT(out.result->usage().compression_ratio(), 1.0);  // W = 8, most tokens evicted
  bool progress = false;
  for (const v1::GenerateEvent& e : out.events) {
    if (e.has_progress()) progress |= e.progress().kv_bytes() > 0;
  }
  EXPECT_TRUE(progress) << "no Progress event with the job's KV bytes";

  // The same job again streams the same branches (seeds, not steps, drive sampling).
  const JobOutput again = RunJob(*d.stub, BestOf(8, "The answer is", 24, 1.0f));
  ASSERT_TRUE(again.result.has_value());
  EXPECT_EQ(again.delta_ids, out.delta_ids);
  std::set<std::vector<int32_t>> distinct;
  for (const auto& [b, ids] : out.delta_ids) distinct.insert(ids);
  EXPECT_GT(distinct.size(), 1u) << "branches with different seeds should differ";
}

// With and without one-step lookahead (plans sent before the previous step's results).
class CoordinatorLookahead : public ::testing::TestWithParam<bool> {};

TEST_P(CoordinatorLookahead, GreedyBranchesEqualTheGoldenContinuation) {
  Deployment d({std::string("--lookahead=") + (GetParam() ? "true" : "false")});
  ASSERT_TRUE(d.ok());
  std::ifstream in(ModelDir() + "/golden.json");
  const nlohmann::json golden = nlohmann::json::parse(in);
  const nlohmann::json& c = golden.at("cases")[2];
  v1::GenerateRequest r = BestOf(4, "", 20, 0.0f);
  for (int32_t id : c.at("prompt").get<std::vector<int32_t>>()) r.mutable_token_ids()->add_ids(id);
  const JobOutput out = RunJob(*d.stub, r);
  ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
  for (int b = 0; b < 4; ++b) {
    EXPECT_EQ(out.delta_ids.at(b), c.at("greedy_tokens").get<std::vector<int32_t>>()) << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CoordinatorLookahead, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "lookahead" : "no_lookahead";
                         });

TEST(Coordinator, AbortStopsTheJobAndFreesEveryPage) {
  Deployment d({"--prefix_cache=false"});  // no root is kept as a cache entry
  ASSERT_TRUE(d.ok());
  std::string job_id;
  bool aborted = false;
  const JobOutput out =
      RunJob(*d.stub, BestOf(8, "abort me", 400, 1.0f), [&](const v1::GenerateEvent& e) {
        if (!aborted && e.has_delta()) {
          aborted = true;
          grpc::ClientContext ctx;
          v1::AbortRequest a;
          a.set_job_id(e.job_id());
          v1::AbortResponse resp;
          EXPECT_TRUE(d.stub->Abort(&ctx, a, &resp).ok());
        }
      });
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->code(), grpc::StatusCode::ABORTED);
  // Aborting a finished job succeeds.
  grpc::ClientContext ctx;
  v1::AbortRequest a;
  a.set_job_id(out.job_id);
  v1::AbortResponse resp;
  EXPECT_TRUE(d.stub->Abort(&ctx, a, &resp).ok());
  // Every page returns: the next step frees the job's sequences.
  const JobOutput next = RunJob(*d.stub, BestOf(1, "x", 2, 0.0f));
  ASSERT_TRUE(next.result.has_value());
  for (auto& w : d.workers) {
    grpc::ClientContext sctx;
    worker::v1::StatsResponse stats;
    ASSERT_TRUE(w->stub().Stats(&sctx, worker::v1::StatsRequest(), &stats).ok());
    EXPECT_LE(stats.cache().num_pages() - stats.cache().free_pages(), 2 * 4)
        << "only the last job's root and branch may remain until the next step";
  }
}

TEST(Coordinator, TwentyConcurrentJobsAllComplete) {
  Deployment d;
  ASSERT_TRUE(d.ok());
  std::vector<JobOutput> outs(20);
  std::vector<std::thread> clients;
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back(
        [&, i] { outs[i] = RunJob(*d.stub, BestOf(2, "job " + std::to_string(i), 12, 1.0f)); });
  }
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(outs[i].result.has_value())
        << i << ": " << (outs[i].error ? outs[i].error->message() : outs[i].status.error_message());
    EXPECT_EQ(outs[i].result->usage().generated_tokens(), 24) << i;
  }
}

// Finished jobs never count against --queue_limit, even while a long job keeps the group from
// ever idling; their records answer GetJob for --finished_job_ttl, then NOT_FOUND.
TEST(Coordinator, FinishedJobsLeaveTheQueueAndTheirRecordsExpire) {
  Deployment d({"--queue_limit=2", "--finished_job_ttl=1"});
  ASSERT_TRUE(d.ok());
  std::atomic<bool> long_started = false;
  JobOutput long_job;
  std::thread long_client([&] {
    long_job =
        RunJob(*d.stub, BestOf(1, "the long one", 200, 1.0f), [&](const v1::GenerateEvent& e) {
          if (e.has_delta()) long_started = true;
        });
  });
  while (!long_started) absl::SleepFor(absl::Milliseconds(5));
  std::string first_id;
  for (int i = 0; i < 6; ++i) {  // one at a time, next to the long job: 2 in the queue at most
    const JobOutput out = RunJob(*d.stub, BestOf(1, "short " + std::to_string(i), 4, 1.0f));
    ASSERT_TRUE(out.result.has_value())
        << i << ": " << (out.error ? out.error->message() : out.status.error_message());
    if (i == 0) first_id = out.job_id;
  }
  long_client.join();
  ASSERT_TRUE(long_job.result.has_value());
  grpc::ClientContext ctx;
  v1::GetJobRequest get;
  get.set_job_id(first_id);
  v1::GetJobResponse job;
  absl::SleepFor(absl::Milliseconds(1500));  // past the 1 s ttl
  EXPECT_EQ(d.stub->GetJob(&ctx, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

// A checkpoint whose logits go non-finite for one token (its embedding row is NaN): a job
// whose prompt holds that token fails with the workers' message, naming the cause; the
// workers and the coordinator serve the next job.
TEST(Coordinator, NonFiniteLogitsFailTheJobNotTheServer) {
  constexpr int kPoison = 7;
  absl::StatusOr<ScopedTempDir> dir = CopyWithTensorValue(ModelDir(), "model.embed_tokens.weight",
                                                          {kPoison}, NAN, ::testing::TempDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  Deployment d({"--model_dir=" + dir->path()});
  ASSERT_TRUE(d.ok());
  v1::GenerateRequest poisoned = BestOf(2, "", 8, 1.0f);
  for (int32_t id : {1, 2, kPoison, 3}) poisoned.mutable_token_ids()->add_ids(id);
  const JobOutput bad = RunJob(*d.stub, poisoned);
  ASSERT_TRUE(bad.error.has_value()) << "a job over NaN logits must fail";
  EXPECT_EQ(bad.error->code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(bad.error->message().find("non-finite"), std::string::npos) << bad.error->message();
  v1::GenerateRequest clean = BestOf(2, "", 8, 1.0f);
  for (int32_t id : {1, 2, 3}) clean.mutable_token_ids()->add_ids(id);
  const JobOutput good = RunJob(*d.stub, clean);
  ASSERT_TRUE(good.result.has_value()) << (good.error ? good.error->message() : "");
  EXPECT_EQ(good.result->usage().generated_tokens(), 16);
}

TEST(Coordinator, BadRequestsAreRejectedAndTheServerKeepsServing) {
  Deployment d;
  ASSERT_TRUE(d.ok());
  std::vector<v1::GenerateRequest> bad(5, BestOf(2, "hi", 4, 1.0f));
  bad[0].set_n(300);
  bad[1].mutable_sampling()->set_temperature(-1);
  bad[2].clear_prompt();
  bad[3].set_model("nope");
  bad[4].mutable_aggregation()->mutable_extractor()->set_regex("([");
  for (size_t i = 0; i < bad.size(); ++i) {
    const JobOutput out = RunJob(*d.stub, bad[i]);
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << "request " << i << ": " << out.status.error_message();
  }
  EXPECT_TRUE(RunJob(*d.stub, BestOf(2, "hi", 4, 1.0f)).result.has_value());
}

// With the same small pool, the DMS policy runs several times more concurrent branches than
// dense (mean branches decoded per step, from the coordinator's statistics). Prints the ratio.
TEST(Coordinator, DmsRunsMoreConcurrentBranchesThanDense) {
  double mean[2] = {0, 0};
  int64_t preemptions[2] = {0, 0};
  for (int dms = 0; dms < 2; ++dms) {
    Deployment d(
        {"--kv_cache_bytes=1048576", std::string("--cache_policy=") + (dms ? "dms" : "dense")});
    ASSERT_TRUE(d.ok());
    const JobOutput out = RunJob(*d.stub, BestOf(128, "capacity", 192, 1.0f));
    ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
    grpc::ClientContext ctx;
    v1::ServerInfo info;
    ASSERT_TRUE(d.stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
    mean[dms] = info.mean_decoding_branches();
    std::printf("%s: %llu steps, peak %d decoding, mean at the limit %.1f\n", dms ? "dms" : "dense",
                static_cast<unsigned long long>(info.steps()), info.peak_running_branches(),
                info.mean_decoding_branches());
    preemptions[dms] = info.preemptions();
  }
  std::printf(
      "mean concurrent branches at the memory limit, 320 KiB pool per rank: dense %.1f (%lld "
      "preemptions), dms %.1f (%lld preemptions): %.1fx\n",
      mean[0], static_cast<long long>(preemptions[0]), mean[1],
      static_cast<long long>(preemptions[1]), mean[1] / std::max(mean[0], 1e-9));
  EXPECT_GE(mean[1], 3 * mean[0]);
}

}  // namespace
}  // namespace rami::testing
