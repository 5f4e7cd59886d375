// Generate streams a job's events until its terminal one; a client that goes away aborts it.
// Every call is authenticated first; jobs are the caller's.
#include "coordinator/service/inference_service.h"

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "base/quote.h"
#include "coordinator/api/request_validation.h"
#include "proto/status_conversion.h"

namespace rami::coordinator {

namespace v1 = rami::v1;

InferenceService::InferenceService(const api::ModelFrontEnd* model, const api::ServerLimits& limits,
                                   JobRunner* runner, auth::Authenticator* auth,
                                   metrics::Metrics* metrics)
    : model_(model), limits_(limits), runner_(runner), auth_(auth), metrics_(metrics) {}

absl::StatusOr<auth::Caller> InferenceService::Authenticate(const grpc::ServerContext* ctx) {
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  return auth_->Authenticate(it == metadata.end()
                                 ? absl::string_view()
                                 : absl::string_view(it->second.data(), it->second.size()));
}

grpc::Status InferenceService::Generate(grpc::ServerContext* ctx,
                                        const v1::GenerateRequest* request,
                                        grpc::ServerWriter<v1::GenerateEvent>* writer) {
  auto reject = [this](const absl::Status& status) {
    if (metrics_ != nullptr) metrics_->RequestEnded(metrics::Outcome::kRejected);
    return ToGrpcStatus(status);
  };
  const absl::StatusOr<auth::Caller> caller = Authenticate(ctx);
  if (!caller.ok()) return reject(caller.status());
  absl::StatusOr<api::ValidatedRequest> validated =
      api::ValidateRequest(*request, *model_, limits_, absl::Now());
  if (!validated.ok()) return reject(validated.status());
  absl::StatusOr<std::shared_ptr<JobHandle>> job = runner_->Submit(
      std::move(*validated), {caller->name, caller->limits.max_jobs, caller->limits.max_branches});
  if (!job.ok()) return reject(job.status());
  while (true) {
    std::optional<v1::GenerateEvent> event = (*job)->events.Pop(absl::Milliseconds(200));
    if (ctx->IsCancelled()) {
      (void)runner_->Abort((*job)->id, std::nullopt, (*job)->owner);
      return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled the job");
    }
    if (!event.has_value()) continue;
    const bool terminal = event->has_result() || event->has_error();
    // A plain Write: the sync API's Write waits for its op, and a buffer-hinted one is not sent
    // (nor completed) until something else flushes the connection — on a stream's first
    // message, never (grpc/grpc#12975): the handler and the client then wait on each other.
    if (!writer->Write(*event)) {
      (void)runner_->Abort((*job)->id, std::nullopt, (*job)->owner);
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    if (terminal) return grpc::Status::OK;
  }
}

grpc::Status InferenceService::Abort(grpc::ServerContext* ctx, const v1::AbortRequest* request,
                                     v1::AbortResponse*) {
  const absl::StatusOr<auth::Caller> caller = Authenticate(ctx);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (request->job_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "job_id: required");
  }
  return ToGrpcStatus(runner_->Abort(
      request->job_id(),
      request->has_branch() ? std::optional<int>(request->branch()) : std::nullopt, caller->name));
}

grpc::Status InferenceService::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* request,
                                      v1::GetJobResponse* response) {
  const absl::StatusOr<auth::Caller> caller = Authenticate(ctx);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  std::optional<v1::GetJobResponse> job = runner_->Get(request->job_id(), caller->name);
  if (!job.has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "job_id: unknown job \"" + Quote(request->job_id()) + "\"");
  }
  *response = *job;
  return grpc::Status::OK;
}

grpc::Status InferenceService::ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest*,
                                          v1::ListModelsResponse* response) {
  if (absl::Status s = Authenticate(ctx).status(); !s.ok()) return ToGrpcStatus(s);
  v1::ModelInfo* info = response->add_models();
  info->set_name(model_->name());
  info->set_vocab_size(model_->vocab_size());
  info->set_max_context(model_->max_context());
  info->set_cache_policy(runner_->cache_policy());
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetServerInfo(grpc::ServerContext* ctx,
                                             const v1::GetServerInfoRequest*,
                                             v1::ServerInfo* response) {
  const absl::StatusOr<auth::Caller> caller = Authenticate(ctx);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  response->set_version("rami 0.1");
  response->set_max_n(limits_.max_n);
  response->set_max_tokens_default(limits_.max_tokens_default);
  response->set_max_logprobs(limits_.max_logprobs);
  response->set_max_stop_strings(limits_.max_stop_strings);
  response->set_max_stop_string_bytes(limits_.max_stop_string_bytes);
  response->set_queue_limit(limits_.queue_limit);
  const RunnerStats stats = runner_->Stats();
  response->set_worker_groups(stats.groups_known);
  response->set_healthy_worker_groups(stats.groups_serving);
  response->set_steps(stats.steps);
  response->set_peak_running_branches(stats.max_branches_running);
  if (stats.steps > 0) {
    response->set_mean_step_ms(stats.step_ms_total / stats.steps);
    response->set_mean_schedule_ms(stats.schedule_ms_total / stats.steps);
    response->set_mean_plan_ms(stats.plan_ms_total / stats.steps);
  }
  response->set_free_pages(stats.free_pages);
  if (stats.decode_steps > 0) {
    response->set_mean_decoding_branches(static_cast<double>(stats.decode_tokens) /
                                         stats.decode_steps);
  }
  response->set_preemptions(stats.preemptions);
  response->set_relocated_branches(stats.relocated_branches);
  response->set_prefill_tokens(stats.prefill_tokens);
  v1::PrefixCacheInfo* prefix = response->mutable_prefix_cache();
  prefix->set_enabled(stats.prefix_cache_enabled);
  prefix->set_hits(stats.prefix.hits);
  prefix->set_misses(stats.prefix.misses);
  prefix->set_cached_tokens(stats.prefix.cached_tokens);
  prefix->set_evictions(stats.prefix.evictions);
  prefix->set_inserted(stats.prefix.inserted);
  for (const GroupStats& g : stats.groups) {
    prefix->set_entries(prefix->entries() + g.prefix_entries);
    prefix->set_entry_tokens(prefix->entry_tokens() + g.prefix_tokens);
    prefix->set_entry_pages(prefix->entry_pages() + g.prefix_pages);
  }
  for (const GroupStats& g : stats.groups) {
    v1::WorkerGroupInfo* info = response->add_groups();
    if (caller->admin) {  // the workers' addresses: for operators only
      info->set_ranks(g.ranks);
      info->set_error(g.error);
    }
    info->set_state(g.state);
    info->set_num_pages(g.num_pages);
    info->set_free_pages(g.free_pages);
    info->set_branches_placed(g.branches_placed);
    info->set_steps(g.steps);
    info->set_page_size(g.page_size);
    info->set_streams(g.streams);
    info->set_eviction_rate(g.eviction_rate);
    info->set_dms_window(static_cast<int32_t>(g.dms_window));
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext* ctx,
                                        const v1::TokenizeRequest* request,
                                        v1::TokenizeResponse* response) {
  if (absl::Status s = Authenticate(ctx).status(); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<int32_t>> ids = api::Tokenize(*request, *model_);
  if (!ids.ok()) return ToGrpcStatus(ids.status());
  response->mutable_token_ids()->Assign(ids->begin(), ids->end());
  response->set_count(static_cast<int32_t>(ids->size()));
  response->set_max_context(limits_.EffectiveContext(model_->max_context()));
  return grpc::Status::OK;
}

grpc::Status InferenceService::Detokenize(grpc::ServerContext* ctx,
                                          const v1::DetokenizeRequest* request,
                                          v1::DetokenizeResponse* response) {
  if (absl::Status s = Authenticate(ctx).status(); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::string> text = api::Detokenize(*request, *model_);
  if (!text.ok()) return ToGrpcStatus(text.status());
  response->set_text(*std::move(text));
  return grpc::Status::OK;
}

}  // namespace rami::coordinator
