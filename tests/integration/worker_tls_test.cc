// Mutual TLS on the worker port (rami-worker --tls_cert_file/--tls_key_file/--tls_ca_file),
// with certificates from deploy/make-dev-certs.sh: plaintext callers and callers without a
// certificate of the deployment's CA never reach the service; a certificate's CN is its role —
// the coordinator's certificate may load and stop the worker, a worker's certificate (a group
// peer) may use the store only, and a certificate of another CA is refused at the handshake.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/worker_credentials.h"
#include "tests/golden/golden_files.h"
#include "tests/integration/worker_process.h"

namespace rami::testing {
namespace {

namespace v1 = worker::v1;
using ::testing::HasSubstr;

// deploy/make-dev-certs.sh into a folder of this test process's own: ctest runs the tests of
// this file in parallel processes, and two scripts writing one folder broke each other's
// certificates.
std::string MakeCerts(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "/rami_worker_tls_" + std::to_string(::getpid()) + "_" + name;
  const std::string command =
      std::string(RAMI_SOURCE_DIR) + "/deploy/make-dev-certs.sh " + dir + " >/dev/null 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return dir;
}

tls::TlsFiles Identity(const std::string& dir, const std::string& who) {
  return {.cert_file = dir + "/" + who + ".pem",
          .key_file = dir + "/" + who + ".key",
          .ca_file = dir + "/ca.pem"};
}

std::unique_ptr<v1::Worker::Stub> Stub(const WorkerProcess& worker, const tls::TlsFiles& tls) {
  return v1::Worker::NewStub(proto::NewWorkerChannel(worker.address(), "", tls));
}

grpc::Status Health(v1::Worker::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::HealthResponse response;
  return stub.Health(&ctx, v1::HealthRequest(), &response);
}

grpc::Status StoreSet(v1::Worker::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::StoreSetRequest request;
  request.set_key("k");
  request.set_value("v");
  v1::StoreSetResponse response;
  return stub.StoreSet(&ctx, request, &response);
}

TEST(WorkerTls, CertificatesNameTheRolesAndNothingElseGetsIn) {
  const std::string certs = MakeCerts("deployment");
  const std::string other = MakeCerts("another_ca");
  const tls::TlsFiles worker_identity = Identity(certs, "worker");
  WorkerProcess worker(
      RAMI_WORKER_BINARY,
      {"--model_roots=" + TestModelRoots(), "--tls_cert_file=" + worker_identity.cert_file,
       "--tls_key_file=" + worker_identity.key_file, "--tls_ca_file=" + worker_identity.ca_file});
  ASSERT_TRUE(worker.ok());

  // Plaintext, and TLS without a client certificate: no handshake, no call.
  std::unique_ptr<v1::Worker::Stub> plaintext = Stub(worker, {});
  EXPECT_EQ(Health(*plaintext).error_code(), grpc::StatusCode::UNAVAILABLE);
  std::unique_ptr<v1::Worker::Stub> anonymous =
      Stub(worker, {.cert_file = "", .key_file = "", .ca_file = certs + "/ca.pem"});
  EXPECT_EQ(Health(*anonymous).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A certificate of another CA (its coordinator's, even): refused at the handshake.
  std::unique_ptr<v1::Worker::Stub> stranger =
      Stub(worker, {.cert_file = other + "/coordinator.pem",
                    .key_file = other + "/coordinator.key",
                    .ca_file = certs + "/ca.pem"});
  EXPECT_EQ(Health(*stranger).error_code(), grpc::StatusCode::UNAVAILABLE);

  // A group peer (CN rami-worker): the store, nothing else.
  std::unique_ptr<v1::Worker::Stub> peer = Stub(worker, worker_identity);
  const grpc::Status peer_health = Health(*peer);
  EXPECT_EQ(peer_health.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(peer_health.error_message(), HasSubstr("coordinator's (control) credentials"));
  {
    grpc::ClientContext ctx;
    v1::ShutdownResponse response;
    EXPECT_EQ(peer->Shutdown(&ctx, v1::ShutdownRequest(), &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_TRUE(StoreSet(*peer).ok());

  // The coordinator (CN rami-coordinator): control, not the store.
  std::unique_ptr<v1::Worker::Stub> coordinator = Stub(worker, Identity(certs, "coordinator"));
  EXPECT_TRUE(Health(*coordinator).ok());
  EXPECT_EQ(StoreSet(*coordinator).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::LoadShardRequest load;
  load.set_model_dir(GoldenModelDir("qwen3"));
  load.set_world_size(1);
  load.set_kv_cache_bytes(8 << 20);
  load.mutable_lease()->set_holder("rami-test");
  load.mutable_lease()->set_epoch(1);
  load.mutable_lease()->set_seconds(30);
  {
    grpc::ClientContext ctx;
    v1::LoadShardResponse response;
    const grpc::Status s = coordinator->LoadShard(&ctx, load, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    v1::ShutdownRequest request;
    request.set_holder("rami-test");
    request.set_epoch(1);
    v1::ShutdownResponse response;
    EXPECT_TRUE(coordinator->Shutdown(&ctx, request, &response).ok());
  }
  EXPECT_EQ(worker.WaitExit(5), 0);
}

// Without a token, a worker may listen beyond loopback only with mutual TLS.
TEST(WorkerTls, MutualTlsLetsAWorkerListenBeyondLoopbackWithoutAToken) {
  const std::string certs = MakeCerts("deployment");
  const tls::TlsFiles identity = Identity(certs, "worker");
  WorkerProcess worker(
      RAMI_WORKER_BINARY,
      {"--listen=0.0.0.0:0", "--model_roots=" + TestModelRoots(),
       "--tls_cert_file=" + identity.cert_file, "--tls_key_file=" + identity.key_file,
       "--tls_ca_file=" + identity.ca_file});
  EXPECT_TRUE(worker.ok());
  WorkerProcess half(RAMI_WORKER_BINARY,
                     {"--model_roots=" + TestModelRoots(), "--tls_cert_file=" + identity.cert_file,
                      "--tls_key_file=" + identity.key_file},
                     3);
  EXPECT_FALSE(half.ok());  // a certificate without --tls_ca_file: refused at start
}

}  // namespace
}  // namespace rami::testing
