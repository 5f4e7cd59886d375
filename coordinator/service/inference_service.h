// InferenceService: the public rami.v1.Inference gRPC service — a thin layer that
// authenticates each call (auth/), validates requests (api/), submits them to the JobRunner
// as the caller's jobs and streams each job's events.
#pragma once

#include "coordinator/api/model_front_end.h"
#include "coordinator/api/server_limits.h"
#include "coordinator/auth/authenticator.h"
#include "coordinator/runner/job_runner.h"
#include "rami/v1/inference.grpc.pb.h"

namespace rami::coordinator {

class InferenceService final : public rami::v1::Inference::Service {
 public:
  // `model`, `runner`, `auth` and `metrics` (may be null) must outlive the service.
  InferenceService(const api::ModelFrontEnd* model, const api::ServerLimits& limits,
                   JobRunner* runner, auth::Authenticator* auth,
                   metrics::Metrics* metrics = nullptr);

  grpc::Status Generate(grpc::ServerContext* ctx, const rami::v1::GenerateRequest* request,
                        grpc::ServerWriter<rami::v1::GenerateEvent>* writer) override;
  grpc::Status Abort(grpc::ServerContext* ctx, const rami::v1::AbortRequest* request,
                     rami::v1::AbortResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const rami::v1::GetJobRequest* request,
                      rami::v1::GetJobResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* ctx, const rami::v1::ListModelsRequest* request,
                          rami::v1::ListModelsResponse* response) override;
  grpc::Status GetServerInfo(grpc::ServerContext* ctx,
                             const rami::v1::GetServerInfoRequest* request,
                             rami::v1::ServerInfo* response) override;
  grpc::Status Tokenize(grpc::ServerContext* ctx, const rami::v1::TokenizeRequest* request,
                        rami::v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* ctx, const rami::v1::DetokenizeRequest* request,
                          rami::v1::DetokenizeResponse* response) override;

 private:
  // The caller named by the call's `authorization` metadata.
  absl::StatusOr<auth::Caller> Authenticate(const grpc::ServerContext* ctx);

  const api::ModelFrontEnd* model_;
  api::ServerLimits limits_;
  JobRunner* runner_;
  auth::Authenticator* auth_;
  metrics::Metrics* metrics_;
};

}  // namespace rami::coordinator
