// The worker port's pieces without processes: WorkerAuth (tokens → roles → RPCs), the loopback
// test of open ports, token files, WorkerLease (required leases, epoch 0, shutdown, refusals
// that name no holder), GroupStore's bounds and ModelRoots' confinement.
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/worker_credentials.h"
#include "worker/service/group_store.h"
#include "worker/service/model_roots.h"
#include "worker/service/worker_auth.h"
#include "worker/service/worker_lease.h"

namespace rami::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kControl[] = "control-secret-0123456789";
constexpr char kStore[] = "store-secret-abcdefghijkl";

std::string Bearer(const std::string& token) { return std::string("Bearer ") + token; }

TEST(WorkerAuth, EachTokenServesOnlyItsRole) {
  WorkerAuth auth(std::string{kControl});
  auth.SetStoreToken(kStore);
  for (WorkerRpc rpc : {WorkerRpc::kLoadShard, WorkerRpc::kStep, WorkerRpc::kStats,
                        WorkerRpc::kHealth, WorkerRpc::kShutdown, WorkerRpc::kRenewLease}) {
    SCOPED_TRACE(RpcName(rpc));
    EXPECT_TRUE(auth.AuthorizeHeader(Bearer(kControl), rpc).ok());
    const absl::Status peer = auth.AuthorizeHeader(Bearer(kStore), rpc);
    EXPECT_TRUE(absl::IsPermissionDenied(peer)) << peer;
    EXPECT_THAT(peer.message(), Not(HasSubstr(kStore)));
  }
  for (WorkerRpc rpc : {WorkerRpc::kStoreSet, WorkerRpc::kStoreGet}) {
    SCOPED_TRACE(RpcName(rpc));
    EXPECT_TRUE(auth.AuthorizeHeader(Bearer(kStore), rpc).ok());
    EXPECT_TRUE(absl::IsPermissionDenied(auth.AuthorizeHeader(Bearer(kControl), rpc)));
  }
}

TEST(WorkerAuth, MissingOrUnknownCredentialsAreUnauthenticated) {
  WorkerAuth auth(std::string{kControl});
  for (const std::optional<absl::string_view>& header :
       {std::optional<absl::string_view>(), std::optional<absl::string_view>(""),
        std::optional<absl::string_view>("Bearer "),
        std::optional<absl::string_view>(kControl),  // no scheme
        std::optional<absl::string_view>("Basic control-secret-0123456789"),
        std::optional<absl::string_view>("Bearer control-secret-012345678"),  // one short
        std::optional<absl::string_view>("Bearer store-secret-abcdefghijkl")}) {
    SCOPED_TRACE(header.has_value() ? std::string(*header) : "(absent)");
    const absl::Status s = auth.AuthorizeHeader(header, WorkerRpc::kShutdown);
    EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("Shutdown"));
  }
  // No store token yet (not rank 0 of a group): no peer is accepted.
  EXPECT_TRUE(absl::IsUnauthenticated(auth.AuthorizeHeader(Bearer(kStore), WorkerRpc::kStoreSet)));
  auth.SetStoreToken(kStore);
  EXPECT_TRUE(auth.AuthorizeHeader(Bearer(kStore), WorkerRpc::kStoreSet).ok());
  auth.SetStoreToken("");  // the next load is no group's rank 0
  EXPECT_TRUE(absl::IsUnauthenticated(auth.AuthorizeHeader(Bearer(kStore), WorkerRpc::kStoreSet)));
}

TEST(WorkerAuth, AnOpenPortTakesEveryCall) {
  WorkerAuth open(std::nullopt);
  EXPECT_TRUE(open.open());
  EXPECT_TRUE(open.AuthorizeHeader(std::nullopt, WorkerRpc::kShutdown).ok());
  EXPECT_TRUE(open.AuthorizeHeader(std::nullopt, WorkerRpc::kStoreSet).ok());
}

TEST(WorkerAuth, LoopbackListenAddresses) {
  for (const char* a :
       {"127.0.0.1:0", "127.0.0.1:50061", "127.1.2.3:9", "localhost:5", "[::1]:50061"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0:50061", "[::]:50061", "10.0.0.1:5", "127.example.com:5",
                        "my-host:5", "[::ffff:10.0.0.1]:5", ":50061", "127.0.0:5"}) {
    EXPECT_FALSE(IsLoopbackListenAddress(a)) << a;
  }
}

TEST(WorkerCredentials, TokenFilesAreReadAndChecked) {
  const std::string path = ::testing::TempDir() + "/rami_token_test_" + std::to_string(getpid());
  std::ofstream(path) << "  " << kControl << "\n";
  absl::StatusOr<std::string> token = proto::ReadTokenFile(path, "--auth_token_file");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, kControl);
  std::ofstream(path) << "short\n";
  token = proto::ReadTokenFile(path, "--auth_token_file");
  EXPECT_TRUE(absl::IsInvalidArgument(token.status()));
  EXPECT_THAT(token.status().message(), HasSubstr("--auth_token_file"));
  EXPECT_THAT(token.status().message(), HasSubstr("16"));
  std::ofstream(path) << "two words are not one token\n";
  EXPECT_THAT(proto::ReadTokenFile(path, "--auth_token_file").status().message(),
              HasSubstr("without spaces"));
  std::remove(path.c_str());
  EXPECT_THAT(proto::ReadTokenFile(path, "--auth_token_file").status().message(),
              HasSubstr("cannot read"));
  const std::string a = proto::NewRandomToken(), b = proto::NewRandomToken();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(proto::ValidateToken(a, "token").ok());
}

worker::v1::Lease Lease(const std::string& holder, int64_t epoch, double seconds = 60) {
  worker::v1::Lease lease;
  lease.set_holder(holder);
  lease.set_epoch(epoch);
  lease.set_seconds(seconds);
  return lease;
}

TEST(WorkerLease, ALeaseIsRequiredAndEpochZeroNeverRuns) {
  EXPECT_THAT(WorkerLease::Validate(Lease("", 1)).message(), HasSubstr("lease.holder: required"));
  EXPECT_THAT(WorkerLease::Validate(Lease("a", 0)).message(), HasSubstr("lease.epoch"));
  EXPECT_THAT(WorkerLease::Validate(Lease("a", 1, 0)).message(), HasSubstr("lease.seconds"));
  EXPECT_TRUE(WorkerLease::Validate(Lease("a", 1)).ok());
  WorkerLease lease;
  EXPECT_TRUE(absl::IsFailedPrecondition(lease.Check(0)));
  EXPECT_TRUE(absl::IsFailedPrecondition(lease.Check(1)));  // nothing taken yet
  ASSERT_TRUE(lease.Take(Lease("coordinator-a", 5)).ok());
  EXPECT_TRUE(lease.Check(5).ok());
  const absl::Status zero = lease.Check(0);
  EXPECT_TRUE(absl::IsFailedPrecondition(zero));
  EXPECT_THAT(zero.message(), HasSubstr("lease_epoch: required"));
  const absl::Status stale = lease.Check(4);
  EXPECT_THAT(stale.message(), HasSubstr("lease lost"));
  EXPECT_THAT(stale.message(), Not(HasSubstr("coordinator-a")));
  EXPECT_THAT(stale.message(), Not(HasSubstr("5")));
}

TEST(WorkerLease, RefusalsNameNeitherHolderNorEpoch) {
  WorkerLease lease;
  ASSERT_TRUE(lease.Take(Lease("coordinator-a", 12345)).ok());
  for (const absl::Status& s :
       {lease.CanTake(Lease("b", 1)), lease.Take(Lease("b", 1)), lease.Renew("b", 1).status(),
        lease.Renew("coordinator-a", 1).status(), lease.CheckShutdown("", 0),
        lease.CheckShutdown("coordinator-a", 1)}) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_THAT(s.message(), Not(HasSubstr("coordinator-a")));
    EXPECT_THAT(s.message(), Not(HasSubstr("12345")));
  }
  EXPECT_TRUE(lease.CanTake(Lease("coordinator-a", 2)).ok());  // a restarted holder
  EXPECT_TRUE(lease.CheckShutdown("coordinator-a", 12345).ok());
  // Lapsed: another holder may load, and any control caller may stop the worker.
  WorkerLease brief;
  ASSERT_TRUE(brief.Take(Lease("a", 1, 0.05)).ok());
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(brief.CheckShutdown("", 0).ok());
  EXPECT_TRUE(brief.Take(Lease("b", 2)).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(brief.Check(1)));
  EXPECT_TRUE(brief.Check(2).ok());
}

TEST(GroupStore, KeysAndValuesAreBounded) {
  GroupStore store;
  EXPECT_TRUE(store.Set("g/a", std::string(kMaxStoreValueBytes, 'v')).ok());
  const absl::Status value = store.Set("g/b", std::string(kMaxStoreValueBytes + 1, 'v'));
  EXPECT_TRUE(absl::IsInvalidArgument(value));
  EXPECT_THAT(value.message(), HasSubstr("kMaxStoreValueBytes"));
  const absl::Status key = store.Set(std::string(kMaxStoreKeyBytes + 1, 'k'), "v");
  EXPECT_TRUE(absl::IsInvalidArgument(key));
  EXPECT_THAT(key.message(), HasSubstr("kMaxStoreKeyBytes"));
  for (size_t i = 1; i < kMaxStoreKeys; ++i) {
    ASSERT_TRUE(store.Set("g/" + std::to_string(i), "v").ok()) << i;
  }
  const absl::Status full = store.Set("g/one-more", "v");
  EXPECT_TRUE(absl::IsResourceExhausted(full));
  EXPECT_THAT(full.message(), HasSubstr("kMaxStoreKeys"));
  EXPECT_TRUE(store.Set("g/a", "replaced").ok());  // replacing is always possible
  std::vector<std::string> too_many(kMaxStoreKeys + 1, "g/a");
  EXPECT_TRUE(absl::IsInvalidArgument(store.Get(too_many, absl::ZeroDuration()).status()));
  // A new incarnation keeps only its own keys.
  ASSERT_TRUE(store.Set("h/x", "v").ok() == false);  // full
  store.StartGroup("h");
  EXPECT_TRUE(absl::IsDeadlineExceeded(store.Get({"g/a"}, absl::ZeroDuration()).status()));
  EXPECT_TRUE(store.Set("h/x", "v").ok());
  EXPECT_EQ(*store.Get({"h/x"}, absl::ZeroDuration()), std::vector<std::string>{"v"});
  store.Close();
  EXPECT_TRUE(absl::IsUnavailable(store.Get({"h/y"}, absl::Seconds(10)).status()));
}

class ModelRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmp[PATH_MAX];
    ASSERT_NE(realpath(::testing::TempDir().c_str(), tmp), nullptr);
    base_ = std::string(tmp) + "/rami_roots_" + std::to_string(getpid());
    mkdir(base_.c_str(), 0700);
    mkdir((base_ + "/root").c_str(), 0700);
    mkdir((base_ + "/root/model").c_str(), 0700);
    mkdir((base_ + "/rootless").c_str(), 0700);  // shares the root's prefix
    mkdir((base_ + "/outside").c_str(), 0700);
    symlink((base_ + "/outside").c_str(), (base_ + "/root/escape").c_str());
    symlink((base_ + "/root/model").c_str(), (base_ + "/outside/into").c_str());
  }
  void TearDown() override {
    for (const char* p : {"/root/escape", "/outside/into"}) unlink((base_ + p).c_str());
    for (const char* p : {"/root/model", "/root", "/rootless", "/outside", ""}) {
      rmdir((base_ + p).c_str());
    }
  }
  std::string base_;
};

TEST_F(ModelRootsTest, ModelDirsAreConfinedAfterRealpath) {
  absl::StatusOr<ModelRoots> roots = ModelRoots::Parse(base_ + "/root/,");
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_EQ(*roots->Confine(base_ + "/root/model"), base_ + "/root/model");
  EXPECT_EQ(*roots->Confine(base_ + "/root/./model/../model"), base_ + "/root/model");
  EXPECT_EQ(*roots->Confine(base_ + "/outside/into"), base_ + "/root/model");  // lands inside
  for (const std::string& dir :
       {base_ + "/outside", base_ + "/root/escape", base_ + "/root/../outside", base_ + "/rootless",
        base_ + "/root/no-such-model", std::string("/etc"), std::string("/no/such/dir")}) {
    SCOPED_TRACE(dir);
    const absl::StatusOr<std::string> s = roots->Confine(dir);
    EXPECT_TRUE(absl::IsPermissionDenied(s.status())) << s.status();
    EXPECT_EQ(s.status().message(),
              "model_dir: \"" + dir + "\" is not inside this worker's --model_roots");
  }
}

TEST_F(ModelRootsTest, NoRootsLoadNothingAndBadRootsAreRefused) {
  const absl::Status none = ModelRoots().Confine(base_ + "/root/model").status();
  EXPECT_TRUE(absl::IsPermissionDenied(none));
  EXPECT_THAT(none.message(), HasSubstr("--model_roots=DIR"));
  const absl::Status bad = ModelRoots::Parse(base_ + "/root," + base_ + "/missing").status();
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_THAT(bad.message(), HasSubstr("--model_roots"));
  EXPECT_THAT(bad.message(), HasSubstr("/missing"));
}

}  // namespace
}  // namespace rami::service
