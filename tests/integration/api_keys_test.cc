// The public gRPC API with API keys (--api_keys_file), end to end on loopback: one CPU worker
// and a coordinator. Each test is something any client could do before keys, refused now:
// calls without a known key, another key's jobs, guessable job ids, unknown ids aborted as if
// they existed, a key past its limits, worker addresses for non-admin keys.
#include <atomic>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rami/v1/inference.grpc.pb.h"
#include "tests/integration/inference_client.h"
#include "tests/integration/worker_process.h"

namespace rami::testing {
namespace {

namespace v1 = rami::v1;

constexpr char kAlice[] = "alice-key-0123456789abcdef";  // max_jobs 1, max_branches 8
constexpr char kBob[] = "bob-key-0123456789abcdef";
constexpr char kOps[] = "ops-key-0123456789abcdef";    // admin
constexpr char kSlow[] = "slow-key-0123456789abcdef";  // rps 1, burst 1

class ApiKeys : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string keys = ::testing::TempDir() + "/rami_api_keys_test.jsonl";
    std::ofstream(keys) << "# the keys of api_keys_test.cc\n"
                        << "{\"name\": \"alice\", \"key\": \"" << kAlice
                        << "\", \"max_jobs\": 1, \"max_branches\": 8, \"rps\": 0}\n"
                        << "{\"name\": \"bob\", \"key\": \"" << kBob << "\", \"rps\": 0}\n"
                        << "{\"name\": \"ops\", \"key\": \"" << kOps
                        << "\", \"admin\": true, \"rps\": 0}\n"
                        << "{\"name\": \"slow\", \"key\": \"" << kSlow
                        << "\", \"rps\": 1, \"burst\": 1}\n";
    worker_ = new WorkerProcess();
    if (!worker_->ok()) return;
    coordinator_ =
        new WorkerProcess(RAMI_COORDINATOR_BINARY,
                          {"--workers=" + worker_->address(), "--model_dir=" + ModelDir(),
                           "--page_size=4", "--kv_cache_bytes=8388608", "--api_keys_file=" + keys,
                           "--worker_auth_token_file=" + TestAuthTokenFile()},
                          60);
    if (!coordinator_->ok()) return;
    stub_ = v1::Inference::NewStub(
                grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials()))
                .release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete coordinator_;
    delete worker_;
  }
  void SetUp() override { ASSERT_NE(stub_, nullptr) << "the deployment did not start"; }

  // A context carrying `key` ("" = none).
  static std::unique_ptr<grpc::ClientContext> As(const std::string& key) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return ctx;
  }
  static grpc::Status GetJob(const std::string& key, const std::string& id,
                             v1::GetJobResponse* out = nullptr) {
    v1::GetJobRequest r;
    r.set_job_id(id);
    v1::GetJobResponse response;
    return stub_->GetJob(As(key).get(), r, out != nullptr ? out : &response);
  }
  static grpc::Status Abort(const std::string& key, const std::string& id) {
    v1::AbortRequest r;
    r.set_job_id(id);
    v1::AbortResponse response;
    return stub_->Abort(As(key).get(), r, &response);
  }

  static WorkerProcess* worker_;
  static WorkerProcess* coordinator_;
  static v1::Inference::Stub* stub_;
};

WorkerProcess* ApiKeys::worker_ = nullptr;
WorkerProcess* ApiKeys::coordinator_ = nullptr;
v1::Inference::Stub* ApiKeys::stub_ = nullptr;

// A long job of `key`'s, running on a thread until Abort: its id once accepted.
struct LongJob {
  LongJob(v1::Inference::Stub& stub, const std::string& key) {
    thread = std::thread([&stub, key, this] {
      out = RunJob(
          stub, BestOf(2, "a long one", 400, 1.0f),
          [this](const v1::GenerateEvent& e) {
            if (e.has_accepted()) {
              absl::MutexLock lock(&mu);
              id = e.job_id();
            }
          },
          key);
      absl::MutexLock lock(&mu);
      ended = true;
    });
  }
  // The job's id, once accepted ("" when the stream ended first).
  std::string Id() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](LongJob* j) { return !j->id.empty() || j->ended; }, this));
    return id;
  }
  ~LongJob() {
    if (thread.joinable()) thread.join();
  }

  absl::Mutex mu;
  std::string id ABSL_GUARDED_BY(mu);
  bool ended ABSL_GUARDED_BY(mu) = false;
  JobOutput out;
  std::thread thread;
};

TEST_F(ApiKeys, CallsWithoutAKnownKeyAreUnauthenticated) {
  for (const std::string key : {std::string(), std::string("wrong-key-0123456789abcdef")}) {
    const JobOutput out = RunJob(*stub_, BestOf(1, "hi", 2, 1.0f), nullptr, key);
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << "key '" << key << "': " << out.status.error_message();
    EXPECT_TRUE(out.job_id.empty());
    v1::ServerInfo info;
    EXPECT_EQ(stub_->GetServerInfo(As(key).get(), {}, &info).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    v1::ListModelsResponse models;
    EXPECT_EQ(stub_->ListModels(As(key).get(), {}, &models).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    v1::TokenizeRequest t;
    t.set_prompt("hi");
    v1::TokenizeResponse tokens;
    EXPECT_EQ(stub_->Tokenize(As(key).get(), t, &tokens).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(GetJob(key, "job-1").error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Abort(key, "job-1").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // The same calls with a key work.
  v1::ListModelsResponse models;
  EXPECT_TRUE(stub_->ListModels(As(kBob).get(), {}, &models).ok());
}

TEST_F(ApiKeys, AnotherKeysJobIsNotFound) {
  const JobOutput done = RunJob(*stub_, BestOf(2, "mine", 4, 1.0f), nullptr, kAlice);
  ASSERT_TRUE(done.result.has_value()) << done.status.error_message();
  v1::GetJobResponse job;
  ASSERT_TRUE(GetJob(kAlice, done.job_id, &job).ok());
  EXPECT_EQ(job.state(), v1::GetJobResponse::FINISHED);
  const grpc::Status other = GetJob(kBob, done.job_id);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::NOT_FOUND) << other.error_message();
  // Word for word what an id that never existed gets.
  EXPECT_EQ(other.error_message(), "job_id: unknown job \"" + done.job_id + "\"");
  EXPECT_EQ(Abort(kBob, done.job_id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Abort(kAlice, done.job_id).ok()) << "aborting one's finished job succeeds";

  // A running job: another key's Abort does not touch it; its owner's does.
  LongJob running(*stub_, kAlice);
  const std::string id = running.Id();
  ASSERT_FALSE(id.empty()) << running.out.status.error_message();
  EXPECT_EQ(GetJob(kBob, id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Abort(kBob, id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Abort(kOps, id).error_code(), grpc::StatusCode::NOT_FOUND) << "admins included";
  ASSERT_TRUE(GetJob(kAlice, id, &job).ok());
  EXPECT_NE(job.state(), v1::GetJobResponse::FAILED);
  EXPECT_TRUE(Abort(kAlice, id).ok());
  running.thread.join();
  running.thread = std::thread();
  ASSERT_TRUE(running.out.error.has_value());
  EXPECT_EQ(running.out.error->code(), grpc::StatusCode::ABORTED);
}

TEST_F(ApiKeys, AbortOfAnUnknownJobIsNotFound) {
  const grpc::Status s = Abort(kBob, "job-00000000000000000000000000000001");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  EXPECT_EQ(Abort(kBob, "job-1").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ApiKeys, JobIdsAreRandomNotSequential) {
  std::set<std::string> ids;
  const std::regex form("job-[0-9a-f]{32}");
  for (int i = 0; i < 3; ++i) {
    const JobOutput out = RunJob(*stub_, BestOf(1, "id", 2, 1.0f), nullptr, kBob);
    ASSERT_TRUE(out.result.has_value()) << out.status.error_message();
    EXPECT_TRUE(std::regex_match(out.job_id, form)) << out.job_id;
    ids.insert(out.job_id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(GetJob(kBob, "job-1").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ApiKeys, MaxJobsIsPerKey) {
  LongJob running(*stub_, kAlice);
  const std::string id = running.Id();
  ASSERT_FALSE(id.empty()) << running.out.status.error_message();
  const JobOutput second = RunJob(*stub_, BestOf(1, "another", 2, 1.0f), nullptr, kAlice);
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(second.status.error_message().find("api key \"alice\": max_jobs 1 reached"),
            std::string::npos)
      << second.status.error_message();
  // Another key is not held by alice's limit.
  EXPECT_TRUE(RunJob(*stub_, BestOf(1, "bob's", 2, 1.0f), nullptr, kBob).result.has_value());
  EXPECT_TRUE(Abort(kAlice, id).ok());
  running.thread.join();
  running.thread = std::thread();
  // Once the job has ended, the slot is free again.
  const JobOutput after = RunJob(*stub_, BestOf(1, "after", 2, 1.0f), nullptr, kAlice);
  EXPECT_TRUE(after.result.has_value()) << after.status.error_message();
}

TEST_F(ApiKeys, MaxBranchesIsPerKey) {
  const JobOutput wide = RunJob(*stub_, BestOf(16, "wide", 2, 1.0f), nullptr, kAlice);
  EXPECT_EQ(wide.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(wide.status.error_message().find("api key \"alice\": max_branches 8 reached"),
            std::string::npos)
      << wide.status.error_message();
  EXPECT_TRUE(RunJob(*stub_, BestOf(8, "fits", 2, 1.0f), nullptr, kAlice).result.has_value());
  EXPECT_TRUE(RunJob(*stub_, BestOf(16, "bob", 2, 1.0f), nullptr, kBob).result.has_value());
}

TEST_F(ApiKeys, RequestsPerSecondIsPerKey) {
  v1::ListModelsResponse models;
  ASSERT_TRUE(stub_->ListModels(As(kSlow).get(), {}, &models).ok());
  const grpc::Status limited = stub_->ListModels(As(kSlow).get(), {}, &models);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(limited.error_message().find("api key \"slow\": rps 1 reached"), std::string::npos)
      << limited.error_message();
  EXPECT_TRUE(stub_->ListModels(As(kBob).get(), {}, &models).ok());
  absl::SleepFor(absl::Milliseconds(1100));  // one token back
  EXPECT_TRUE(stub_->ListModels(As(kSlow).get(), {}, &models).ok());
}

TEST_F(ApiKeys, WorkerAddressesOnlyForAdmins) {
  v1::ServerInfo admin, user;
  ASSERT_TRUE(stub_->GetServerInfo(As(kOps).get(), {}, &admin).ok());
  ASSERT_TRUE(stub_->GetServerInfo(As(kBob).get(), {}, &user).ok());
  ASSERT_EQ(admin.groups_size(), 1);
  EXPECT_EQ(admin.groups(0).ranks(), worker_->address());
  ASSERT_EQ(user.groups_size(), 1);
  EXPECT_EQ(user.groups(0).ranks(), "");
  EXPECT_EQ(user.groups(0).state(), "serving");
  EXPECT_EQ(user.healthy_worker_groups(), 1);
  EXPECT_EQ(user.max_n(), admin.max_n());
}

}  // namespace
}  // namespace rami::testing
