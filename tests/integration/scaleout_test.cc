// Scale-out on loopback: one rami-coordinator over two worker groups (2 × TP=2 rami-worker
// processes, CPU, Gloo) found through a discovery file; jobs span groups, survive a killed
// worker (branches re-run on the other group and give the very same text), and groups added
// while jobs run start receiving branches. Leases: a second coordinator is refused the
// workers, a restarted one (same id) takes them over.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rami/v1/inference.grpc.pb.h"
#include "tests/integration/inference_client.h"
#include "tests/integration/worker_process.h"

namespace rami::testing {
namespace {

namespace v1 = rami::v1;

std::vector<std::string> CommonFlags() {
  return {"--model_dir=" + ModelDir(),
          "--page_size=4",
          "--kv_cache_bytes=8388608",
          "--collective_timeout=5",
          "--discovery_interval=0.2",
          "--lease_seconds=3",
          "--worker_auth_token_file=" + TestAuthTokenFile()};
}

std::string Group(WorkerProcess& a, WorkerProcess& b) { return a.address() + "," + b.address(); }

// Writes `text` to `path` atomically (the coordinator re-reads it concurrently).
void WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  std::rename(tmp.c_str(), path.c_str());
}

v1::ServerInfo Info(v1::Inference::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::ServerInfo info;
  stub.GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  return info;
}

// Waits until `groups` groups serve; false after 60 s.
bool WaitForGroups(v1::Inference::Stub& stub, int groups) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    if (Info(stub).healthy_worker_groups() == groups) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

struct Cluster {
  // `workers` rami-worker processes, paired into TP=2 groups, all listed in the file.
  explicit Cluster(int workers) {
    for (int i = 0; i < workers; ++i) this->workers.push_back(std::make_unique<WorkerProcess>());
    for (auto& w : this->workers) {
      if (!w->ok()) return;
    }
    file = ::testing::TempDir() + "/rami_groups_" + std::to_string(getpid());
    WriteFile(file, GroupLines(workers / 2));
  }
  ~Cluster() { std::remove(file.c_str()); }
  std::string GroupLines(int groups) {
    std::string text = "# rami worker groups\n";
    for (int g = 0; g < groups; ++g) text += Group(*workers[2 * g], *workers[2 * g + 1]) + "\n";
    return text;
  }
  bool StartCoordinator(const std::string& id, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> flags = CommonFlags();
    flags.insert(flags.end(), extra.begin(), extra.end());
    flags.push_back("--worker_discovery=file:" + file);
    flags.push_back("--coordinator_id=" + id);
    coordinator = std::make_unique<WorkerProcess>(RAMI_COORDINATOR_BINARY, flags, 60);
    if (!coordinator->ok()) return false;
    stub = v1::Inference::NewStub(
        grpc::CreateChannel(coordinator->address(), grpc::InsecureChannelCredentials()));
    return true;
  }

  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::string file;
  std::unique_ptr<WorkerProcess> coordinator;
  std::unique_ptr<v1::Inference::Stub> stub;
};

v1::GenerateRequest LongJob() {
  v1::GenerateRequest r = BestOf(8, "The answer is", 160, 1.0f);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

TEST(ScaleOut, BranchesSpanGroupsAndSurviveAKilledWorker) {
  Cluster c(4);
  ASSERT_EQ(c.workers.size(), 4u);
  ASSERT_TRUE(c.StartCoordinator("coordinator-a"));
  ASSERT_TRUE(WaitForGroups(*c.stub, 2));

  // Reference: both groups healthy. The job's branches are spread over both groups.
  const JobOutput reference = RunJob(*c.stub, LongJob());
  ASSERT_TRUE(reference.result.has_value()) << (reference.error ? reference.error->message() : "");
  EXPECT_EQ(reference.result->usage().worker_groups(), 2);
  EXPECT_EQ(reference.result->usage().relocated_branches(), 0);

  // The same job; one worker of a group is killed mid-job.
  int deltas = 0;
  const absl::Time start = absl::Now();
  const JobOutput out = RunJob(*c.stub, LongJob(), [&](const v1::GenerateEvent& e) {
    if (e.has_delta() && ++deltas == 40) c.workers[3]->Kill();
  });
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
  EXPECT_LT(took, absl::Seconds(30));
  std::printf("best-of-8 × 160 tokens with a worker killed mid-job: %.2f s, %d branches moved\n",
              absl::ToDoubleSeconds(took), out.result->usage().relocated_branches());
  EXPECT_GT(out.result->usage().relocated_branches(), 0);
  // Re-run from prompt + tokens so far with the same seeds, the moved branches end exactly as
  // they would have: nothing lost, nothing repeated in the stream.
  ASSERT_EQ(out.finished.size(), 8u);
  for (const auto& [branch, f] : out.finished) {
    EXPECT_EQ(f.text(), reference.finished.at(branch).text()) << "branch " << branch;
    EXPECT_EQ(out.delta_text.at(branch), f.text()) << "branch " << branch;
    EXPECT_EQ(f.tokens(), 160);
  }
  EXPECT_EQ(out.result->answer(), reference.result->answer());

  // The surviving group keeps serving new jobs.
  const JobOutput after = RunJob(*c.stub, BestOf(4, "Hello", 8, 1.0f));
  ASSERT_TRUE(after.result.has_value()) << (after.error ? after.error->message() : "");
  EXPECT_EQ(after.result->usage().worker_groups(), 1);
}

// A stopped worker (SIGSTOP: alive, its streams open, silent) misses its group's step
// deadline: the group is failed and named, its branches move and end as they would have.
TEST(ScaleOut, AStoppedWorkerMissesItsStepDeadlineAndItsBranchesMove) {
  Cluster c(4);
  ASSERT_EQ(c.workers.size(), 4u);
  ASSERT_TRUE(c.StartCoordinator("coordinator-a", {"--step_timeout_floor=1"}));
  ASSERT_TRUE(WaitForGroups(*c.stub, 2));
  const JobOutput reference = RunJob(*c.stub, LongJob());
  ASSERT_TRUE(reference.result.has_value()) << (reference.error ? reference.error->message() : "");

  int deltas = 0;
  absl::Time stopped;
  const JobOutput out = RunJob(*c.stub, LongJob(), [&](const v1::GenerateEvent& e) {
    if (e.has_delta() && ++deltas == 40) {
      c.workers[3]->Stop();
      stopped = absl::Now();
    }
  });
  const absl::Duration took = absl::Now() - stopped;
  ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
  std::printf("best-of-8 with a worker stopped mid-job: done %.2f s after the stop, %d moved\n",
              absl::ToDoubleSeconds(took), out.result->usage().relocated_branches());
  EXPECT_GT(out.result->usage().relocated_branches(), 0);
  EXPECT_LT(took, absl::Seconds(20));  // a deadline of ~1 s, then the moved branches re-run
  for (const auto& [branch, f] : out.finished) {
    EXPECT_EQ(f.text(), reference.finished.at(branch).text()) << "branch " << branch;
  }
  // The group is reported failed, naming the silent rank.
  grpc::ClientContext ctx;
  v1::ServerInfo info;
  ASSERT_TRUE(c.stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.healthy_worker_groups(), 1);
  bool named = false;
  for (const v1::WorkerGroupInfo& g : info.groups()) {
    named |= g.state() != "serving" &&
             g.error().find(c.workers[3]->address()) != std::string::npos &&
             g.error().find("step deadline") != std::string::npos;
  }
  EXPECT_TRUE(named) << info.DebugString();
  c.workers[3]->Continue();
}

TEST(ScaleOut, AGroupAddedWhileJobsRunReceivesBranches) {
  Cluster c(4);
  ASSERT_EQ(c.workers.size(), 4u);
  WriteFile(c.file, c.GroupLines(1));
  ASSERT_TRUE(c.StartCoordinator("coordinator-b"));
  ASSERT_TRUE(WaitForGroups(*c.stub, 1));
  // A job runs on the only group while the second one joins; a job submitted then goes (at
  // least partly) to the new group, which has more room.
  std::thread running([&] {
    const JobOutput out = RunJob(*c.stub, LongJob());
    EXPECT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
    if (out.result) {
      EXPECT_EQ(out.result->usage().worker_groups(), 1);
    }
  });
  WriteFile(c.file, c.GroupLines(2));
  const bool joined = WaitForGroups(*c.stub, 2);
  JobOutput out;
  if (joined) out = RunJob(*c.stub, BestOf(8, "Hello", 8, 1.0f));
  running.join();
  ASSERT_TRUE(joined);
  ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");
  const v1::ServerInfo info = Info(*c.stub);
  ASSERT_EQ(info.groups_size(), 2);
  const std::string second = Group(*c.workers[2], *c.workers[3]);
  for (const v1::WorkerGroupInfo& g : info.groups()) {
    EXPECT_EQ(g.state(), "serving");
    if (g.ranks() == second) {
      EXPECT_GT(g.branches_placed(), 0);
      EXPECT_GT(g.steps(), 0u);
    } else {
      EXPECT_GE(g.branches_placed(), 8);
    }
  }
  // A group dropped from the list stops receiving work; jobs keep running on the other.
  WriteFile(c.file, c.GroupLines(1));
  ASSERT_TRUE(WaitForGroups(*c.stub, 1));
  const JobOutput last = RunJob(*c.stub, BestOf(8, "Hello", 8, 1.0f));
  ASSERT_TRUE(last.result.has_value()) << (last.error ? last.error->message() : "");
  EXPECT_EQ(last.result->usage().worker_groups(), 1);
}

TEST(Leases, ASecondCoordinatorIsRefusedAndARestartedOneTakesOver) {
  Cluster c(2);
  ASSERT_EQ(c.workers.size(), 2u);
  ASSERT_TRUE(c.StartCoordinator("coordinator-c"));
  ASSERT_TRUE(WaitForGroups(*c.stub, 1));

  // Another coordinator id on the same workers: refused while the lease is live.
  std::vector<std::string> flags = CommonFlags();
  flags.push_back("--workers=" + Group(*c.workers[0], *c.workers[1]));
  flags.push_back("--coordinator_id=intruder");
  flags.push_back("--startup_timeout=2");
  flags.push_back("--lease_seconds=30");
  {
    WorkerProcess intruder(RAMI_COORDINATOR_BINARY, flags, 10);
    EXPECT_FALSE(intruder.ok());
    EXPECT_EQ(intruder.WaitExit(10), 1);
  }
  // The first one still owns the workers.
  const JobOutput out = RunJob(*c.stub, BestOf(2, "Hello", 8, 1.0f));
  ASSERT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "");

  // It dies; a coordinator with its id takes the workers over at once (no lease wait).
  c.coordinator->Kill();
  c.coordinator->WaitExit(5);
  flags = CommonFlags();
  flags.push_back("--workers=" + Group(*c.workers[0], *c.workers[1]));
  flags.push_back("--coordinator_id=coordinator-c");
  flags.push_back("--startup_timeout=2");
  WorkerProcess restarted(RAMI_COORDINATOR_BINARY, flags, 10);
  ASSERT_TRUE(restarted.ok());
  auto stub = v1::Inference::NewStub(
      grpc::CreateChannel(restarted.address(), grpc::InsecureChannelCredentials()));
  const JobOutput again = RunJob(*stub, BestOf(2, "Hello", 8, 1.0f));
  ASSERT_TRUE(again.result.has_value()) << (again.error ? again.error->message() : "");
  EXPECT_EQ(again.result->branches(0).tokens(), 8);
}

}  // namespace
}  // namespace rami::testing
