// POST /v1/completions and /v1/chat/completions: OpenAI JSON → validated jobs → the runner →
// one response body, or server-sent events as the branches stream.
#include <httplib.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/api/request_validation.h"
#include "coordinator/http/http_front_end.h"
#include "coordinator/http/http_util.h"
#include "coordinator/http/openai_response.h"

namespace rami::http {
namespace {

using coordinator::JobHandle;
using json = nlohmann::json;

// The jobs of one request, read together: each queue is polled in turn.
struct RequestJobs {
  std::vector<std::shared_ptr<JobHandle>> handles;
  coordinator::JobRunner* runner = nullptr;

  // Feeds `responder` every event available now (waits up to `wait` for the first one);
  // returns the chunks it produced.
  std::vector<std::string> Pump(OpenAiResponder& responder, absl::Duration wait) {
    std::vector<std::string> chunks;
    bool any = false;
    for (size_t j = 0; j < handles.size(); ++j) {
      while (auto event =
                 handles[j]->events.Pop(any ? absl::ZeroDuration() : wait / handles.size())) {
        any = true;
        for (std::string& c : responder.OnEvent(static_cast<int>(j), *event)) {
          chunks.push_back(std::move(c));
        }
      }
    }
    return chunks;
  }
  void AbortAll() {
    for (const std::shared_ptr<JobHandle>& h : handles) {
      (void)runner->Abort(h->id, std::nullopt, h->owner);  // OK or gone already
    }
  }
};

// Streams the responder's chunks as server-sent events until every job has ended.
void Stream(httplib::Response& res, std::shared_ptr<RequestJobs> jobs,
            std::shared_ptr<OpenAiResponder> responder) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [jobs, responder](size_t, httplib::DataSink& sink) {
        absl::Time last_write = absl::Now();
        while (!responder->done()) {
          std::vector<std::string> chunks = jobs->Pump(*responder, absl::Milliseconds(100));
          // An idle stream still writes now and then: a client that left is noticed (the
          // write fails) and its jobs aborted, even while they wait in the queue.
          if (chunks.empty() && absl::Now() - last_write > absl::Seconds(2)) {
            chunks.push_back(": keep-alive\n\n");
          }
          for (const std::string& c : chunks) {
            if (!sink.write(c.data(), c.size())) {
              jobs->AbortAll();
              return false;
            }
            last_write = absl::Now();
          }
        }
        for (const std::string& c : responder->FinalChunks()) {
          if (!sink.write(c.data(), c.size())) return false;
        }
        sink.done();
        return true;
      },
      [jobs](bool success) {
        if (!success) jobs->AbortAll();  // idempotent for jobs that ended
      });
}

}  // namespace

absl::StatusOr<std::vector<api::ValidatedRequest>> HttpFrontEnd::Validate(
    OpenAiRequest& request, ResponderOptions& options) const {
  // Every prompt is validated before any job starts: a bad prompt in a batch runs nothing.
  std::vector<api::ValidatedRequest> validated;
  for (size_t j = 0; j < request.jobs.size(); ++j) {
    rami::v1::GenerateRequest& job = request.jobs[j];
    job.set_model(model_->name());
    absl::StatusOr<api::ValidatedRequest> v =
        api::ValidateRequest(job, *model_, limits_, absl::Now());
    if (!v.ok()) {
      const absl::Status named = WithHttpFieldNames(v.status(), request.endpoint);
      // Messages of a batch's prompts say which one.
      if (request.jobs.size() == 1) return named;
      return absl::Status(named.code(), absl::StrCat("prompt[", j, "]: ", named.message()));
    }
    request.first_prompt_tokens.push_back(v->prompt_token_ids.at(0));  // never empty
    if (request.echo && job.has_token_ids() && model_->tokenizer() != nullptr) {
      request.prompt_texts[j] = model_->tokenizer()->Decode(v->prompt_token_ids);
    }
    if (options.split_reasoning) {
      absl::StatusOr<std::string> prompt = model_->RenderChat(job);
      options.prompt_opens_reasoning.push_back(prompt.ok() &&
                                               ReasoningSplitter::OpensReasoning(*prompt));
    }
    validated.push_back(*std::move(v));
  }
  return validated;
}

void HttpFrontEnd::Completions(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto reject = [&](const absl::Status& status) {
    if (metrics_ != nullptr) metrics_->RequestEnded(metrics::Outcome::kRejected);
    SendError(res, status);
  };
  const std::optional<auth::Caller> caller = Authenticate(req, res);
  if (!caller.has_value()) {
    if (metrics_ != nullptr) metrics_->RequestEnded(metrics::Outcome::kRejected);
    return;
  }
  absl::StatusOr<OpenAiRequest> parsed =
      ParseOpenAiRequest(chat ? Endpoint::kChatCompletions : Endpoint::kCompletions, req.body,
                         options_.served_model_name);
  if (!parsed.ok()) return reject(parsed.status());
  ResponderOptions ro;
  ro.served_model = options_.served_model_name;
  ro.tokenizer = model_->tokenizer();
  ro.split_reasoning = chat && split_reasoning_;
  ro.created = absl::ToUnixSeconds(absl::Now());
  absl::StatusOr<std::vector<api::ValidatedRequest>> validated = Validate(*parsed, ro);
  if (!validated.ok()) return reject(validated.status());

  // A batch's jobs are admitted together or not at all (queue and key limits).
  absl::StatusOr<std::vector<std::shared_ptr<JobHandle>>> handles = runner_->Submit(
      *std::move(validated), {caller->name, caller->limits.max_jobs, caller->limits.max_branches});
  if (!handles.ok()) return reject(handles.status());
  auto jobs = std::make_shared<RequestJobs>();
  jobs->runner = runner_;
  jobs->handles = *std::move(handles);
  ro.id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", jobs->handles[0]->id);
  auto responder = std::make_shared<OpenAiResponder>(*parsed, std::move(ro));
  if (parsed->stream) return Stream(res, jobs, responder);
  // The client's status code must say how the jobs ended, so the response waits for them
  // here. (A non-streamed request whose client leaves runs to its end: max_tokens and
  // deadline_seconds bound it.)
  while (!responder->done()) jobs->Pump(*responder, absl::Milliseconds(200));
  if (!responder->error().ok()) return SendError(res, responder->error());
  res.set_content(responder->Body().dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

}  // namespace rami::http
