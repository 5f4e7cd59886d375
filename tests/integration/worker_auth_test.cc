// The worker port obeys only its coordinator, over real rami-worker processes on loopback.
// Every attack below worked before the port had credentials and leases on every call: an
// outsider's Shutdown, a Step with lease_epoch 0 freeing running sequences, a LoadShard
// takeover under another holder, a failed LoadShard dropping the serving model, flooding the
// rendezvous store, probing the filesystem through model_dir, and either token used for the
// other role's RPCs. Now each is refused and the worker serves on.
#include <unistd.h>

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/integration/worker_group.h"
#include "worker/service/group_store.h"

namespace rami::testing {
namespace {

namespace v1 = worker::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kKvBytes = 8 << 20;

// A group of one, loaded, with sequence 1 prefilled (so it can decode).
struct Serving {
  Serving() : group(1) {
    if (!group.ok() || !group.Load(GoldenModelDir("qwen3"), kKvBytes).ok()) return;
    v1::StepPlan plan;
    plan.set_step_id(1);
    v1::PrefillChunk* p = plan.add_prefills();
    p->set_seq_id(1);
    p->add_token_ids(5);
    p->add_token_ids(17);
    p->set_create(true);
    p->set_sample(true);
    p->mutable_sampling()->set_seed(1);  // greedy
    loaded = group.Step(plan)[0].error_code() == 0;
  }
  // Decodes sequence 1 through the group (the coordinator): the model and the sequence live.
  bool Decodes() {
    v1::StepPlan plan;
    plan.set_step_id(++step);
    plan.add_decodes(1);
    const v1::StepResult r = group.Step(plan)[0];
    return r.error_code() == 0 && r.tokens_size() == 1;
  }
  WorkerProcess& worker() { return group.rank(0); }

  WorkerGroup group;
  bool loaded = false;
  uint64_t step = 1;
};

grpc::Status Shutdown(v1::Worker::Stub& stub, const std::string& holder = "", int64_t epoch = 0) {
  grpc::ClientContext ctx;
  v1::ShutdownRequest request;
  request.set_holder(holder);
  request.set_epoch(epoch);
  v1::ShutdownResponse response;
  return stub.Shutdown(&ctx, request, &response);
}

grpc::Status Load(v1::Worker::Stub& stub, const std::string& model_dir,
                  const std::string& holder = WorkerGroup::kTestLeaseHolder, int64_t epoch = 1) {
  v1::LoadShardRequest request;
  request.set_model_dir(model_dir);
  request.set_world_size(1);
  request.set_kv_cache_bytes(kKvBytes);
  request.mutable_lease()->set_holder(holder);
  request.mutable_lease()->set_epoch(epoch);
  request.mutable_lease()->set_seconds(600);
  grpc::ClientContext ctx;
  v1::LoadShardResponse response;
  return stub.LoadShard(&ctx, request, &response);
}

// One plan on a fresh Step stream of `stub`: the result, or the stream's final status in
// error_code / error_message when the stream was refused.
v1::StepResult StepOnce(v1::Worker::Stub& stub, const v1::StepPlan& plan) {
  grpc::ClientContext ctx;
  auto stream = stub.Step(&ctx);
  v1::StepResult result;
  if (stream->Write(plan) && stream->Read(&result)) {
    stream->WritesDone();
    stream->Finish();
    return result;
  }
  const grpc::Status s = stream->Finish();
  result.set_error_code(s.error_code());
  result.set_error_message(s.error_message());
  return result;
}

TEST(WorkerPort, AnOutsidersShutdownIsRefusedAndTheWorkerServesOn) {
  Serving s;
  ASSERT_TRUE(s.loaded);
  auto outsider = s.worker().StubWithToken("");
  EXPECT_EQ(Shutdown(*outsider).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto guesser = s.worker().StubWithToken("not-the-token-of-this-worker");
  EXPECT_EQ(Shutdown(*guesser).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Even with the control token, only the lease's holder and epoch may stop a leased worker.
  const grpc::Status unleased = Shutdown(s.worker().stub());
  EXPECT_EQ(unleased.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(unleased.error_message(), Not(HasSubstr(WorkerGroup::kTestLeaseHolder)));
  EXPECT_EQ(Shutdown(s.worker().stub(), WorkerGroup::kTestLeaseHolder, 99).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.worker().WaitExit(0.5), -1);  // still running
  EXPECT_TRUE(s.Decodes());
  EXPECT_TRUE(
      Shutdown(s.worker().stub(), WorkerGroup::kTestLeaseHolder, s.group.lease_epoch()).ok());
  EXPECT_EQ(s.worker().WaitExit(10), 0);
}

TEST(WorkerPort, AStepWithEpochZeroIsRefusedAndTheSequencesAreUntouched) {
  Serving s;
  ASSERT_TRUE(s.loaded);
  v1::StepPlan plan;
  plan.set_step_id(50);
  plan.add_frees(1);
  plan.set_lease_epoch(0);
  const v1::StepResult r = StepOnce(s.worker().stub(), plan);
  EXPECT_EQ(r.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << r.error_message();
  EXPECT_THAT(r.error_message(), HasSubstr("lease_epoch"));
  EXPECT_TRUE(s.Decodes());  // sequence 1 was not freed
}

TEST(WorkerPort, AnOutsidersFreesAreRefused) {
  Serving s;
  ASSERT_TRUE(s.loaded);
  v1::StepPlan plan;
  plan.set_step_id(50);
  plan.add_frees(1);
  plan.set_lease_epoch(s.group.lease_epoch());  // even knowing the epoch
  auto outsider = s.worker().StubWithToken("");
  const v1::StepResult r = StepOnce(*outsider, plan);
  EXPECT_EQ(r.error_code(), grpc::StatusCode::UNAUTHENTICATED) << r.error_message();
  EXPECT_TRUE(s.Decodes());
}

TEST(WorkerPort, ATakeoverIsRefusedAndAFailedLoadKeepsTheModel) {
  Serving s;
  ASSERT_TRUE(s.loaded);
  const grpc::Status takeover = Load(s.worker().stub(), GoldenModelDir("qwen3"), "intruder", 7);
  EXPECT_EQ(takeover.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(takeover.error_message(), Not(HasSubstr(WorkerGroup::kTestLeaseHolder)));
  EXPECT_TRUE(s.Decodes());
  // The holder itself, with a model_dir that is no model (inside the roots) or outside them:
  // refused before the serving shard is dropped, and the lease keeps its epoch.
  const std::string not_a_model = std::string(RAMI_SOURCE_DIR) + "/tests";
  const grpc::Status bad = Load(s.worker().stub(), not_a_model, WorkerGroup::kTestLeaseHolder, 2);
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.error_message(), HasSubstr("config.json"));
  EXPECT_TRUE(s.Decodes());
  const grpc::Status outside = Load(s.worker().stub(), "/etc", WorkerGroup::kTestLeaseHolder, 2);
  EXPECT_EQ(outside.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(s.Decodes());
}

// (Relative paths resolve from the worker's folder, which may itself lie in a root — the test
// roots include the temp folder — so the relative probe climbs to / first.)
TEST(WorkerPort, ModelDirProbesGetOneAnswerWhetherOrNotThePathExists) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  const std::string links = ::testing::TempDir() + "/rami_probe_" + std::to_string(getpid());
  ASSERT_EQ(symlink("/etc", (links + "_etc").c_str()), 0);
  ASSERT_EQ(symlink("/no/such/dir", (links + "_none").c_str()), 0);
  const std::string golden = GoldenModelDir("qwen3");
  for (const std::string& dir :
       {std::string("/etc"), std::string("/etc/no-such-dir"),
        std::string("../../../../../../../../../../etc"), golden + "/../../../../../../../../etc",
        golden + "/../../../../../../../../no-such-dir", links + "_etc", links + "_none"}) {
    SCOPED_TRACE(dir);
    const grpc::Status s = Load(worker.stub(), dir);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(s.error_message(),
              "LoadShard: model_dir: \"" + dir + "\" is not inside this worker's --model_roots");
  }
  std::remove((links + "_etc").c_str());
  std::remove((links + "_none").c_str());
  EXPECT_TRUE(Load(worker.stub(), golden).ok());  // inside the roots: loads
}

TEST(WorkerPort, TheStoreIsBoundedAndEachTokenServesOnlyItsRole) {
  WorkerGroup group(2);
  ASSERT_TRUE(group.ok());
  const absl::Status loaded = group.Load(GoldenModelDir("qwen3"), kKvBytes);
  if (absl::IsUnimplemented(loaded)) GTEST_SKIP() << loaded;  // a build without Gloo
  ASSERT_TRUE(loaded.ok()) << loaded;
  WorkerProcess& rank0 = group.rank(0);
  auto peer = rank0.StubWithToken(group.store_token());
  auto set = [](v1::Worker::Stub& stub, const std::string& key, size_t bytes) {
    v1::StoreSetRequest request;
    request.set_key(key);
    request.set_value(std::string(bytes, 'x'));
    grpc::ClientContext ctx;
    v1::StoreSetResponse response;
    return stub.StoreSet(&ctx, request, &response);
  };
  // Roles: the control token is no peer; the store token drives nothing; no token, nothing.
  EXPECT_EQ(set(rank0.stub(), "k", 1).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(set(*rank0.StubWithToken(""), "k", 1).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Shutdown(*peer, WorkerGroup::kTestLeaseHolder, group.lease_epoch()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Load(*peer, GoldenModelDir("qwen3")).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  {
    grpc::ClientContext ctx;
    v1::StatsResponse stats;
    EXPECT_EQ(peer->Stats(&ctx, v1::StatsRequest(), &stats).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  v1::StepPlan plan;
  plan.add_frees(1);
  plan.set_lease_epoch(group.lease_epoch());
  EXPECT_EQ(StepOnce(*peer, plan).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Rank 1's store serves nobody (only a group's rank 0 takes the token).
  EXPECT_EQ(set(*group.rank(1).StubWithToken(group.store_token()), "k", 1).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // Bounds: key and value sizes, then the number of keys.
  const grpc::Status big_value = set(*peer, "v", service::kMaxStoreValueBytes + 1);
  EXPECT_EQ(big_value.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(big_value.error_message(), HasSubstr("kMaxStoreValueBytes"));
  const grpc::Status big_key = set(*peer, std::string(service::kMaxStoreKeyBytes + 1, 'k'), 1);
  EXPECT_EQ(big_key.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(big_key.error_message(), HasSubstr("kMaxStoreKeyBytes"));
  grpc::Status flood;
  int accepted = 0;
  for (; accepted < 1000; ++accepted) {
    flood = set(*peer, "flood/" + std::to_string(accepted), service::kMaxStoreValueBytes);
    if (!flood.ok()) break;
  }
  EXPECT_EQ(flood.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << flood.error_message();
  EXPECT_THAT(flood.error_message(), HasSubstr("kMaxStoreKeys"));
  EXPECT_LE(accepted, static_cast<int>(service::kMaxStoreKeys));
  // The group steps on, and a reload (a new incarnation, a new token) starts a clean store.
  v1::StepPlan step;
  step.set_step_id(1);
  v1::PrefillChunk* p = step.add_prefills();
  p->set_seq_id(1);
  p->add_token_ids(5);
  p->set_create(true);
  p->set_sample(true);
  p->mutable_sampling()->set_seed(1);  // greedy
  for (const v1::StepResult& r : group.Step(step))
    EXPECT_EQ(r.error_code(), 0) << r.error_message();
  const std::string old_token = group.store_token();
  ASSERT_TRUE(group.Load(GoldenModelDir("qwen3"), kKvBytes).ok());
  EXPECT_EQ(set(*rank0.StubWithToken(old_token), "k", 1).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(set(*rank0.StubWithToken(group.store_token()), "k", 1).ok());
}

TEST(WorkerPort, NoTokenFileIsRefusedOffLoopback) {
  // The later --listen wins over WorkerProcess's loopback one.
  WorkerProcess open(RAMI_WORKER_BINARY, {"--listen=0.0.0.0:0"}, 5);
  EXPECT_FALSE(open.ok());
  EXPECT_EQ(open.WaitExit(5), 1);
}

}  // namespace
}  // namespace rami::testing
