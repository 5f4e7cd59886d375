// rami: the command-line client of the public API.
//   rami generate [--server=ADDR] [--n=8] [--max_tokens=64] [--temperature=1] [--seed=0]
//                 [--aggregation=majority_vote] [--regex=RE] [--json] "prompt"
//   rami info [--server=ADDR]
// With a coordinator that has API keys, the key comes from --api_key or, when that is empty, the
// environment variable RAMI_API_KEY (which keeps it out of `ps`); it is sent as
// `authorization: Bearer <key>`. With a coordinator serving TLS, --tls_ca_file (or $RAMI_TLS_CA)
// names the CA bundle its certificate chains to; the address must be a name the certificate
// holds (localhost, 127.0.0.1, ...).
// `generate` shows live progress (branches running / done, tokens/s, KV in use and compression,
// votes so far) and then the answer; --json prints the final Result as JSON instead.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "rami/v1/inference.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "coordinator address");
ABSL_FLAG(int, n, 8, "branches");
ABSL_FLAG(int, max_tokens, 64, "tokens per branch");
ABSL_FLAG(float, temperature, 1.0f, "sampling temperature (0 = greedy)");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling");
ABSL_FLAG(uint64_t, seed, 0, "branch i samples with seed + i");
ABSL_FLAG(std::string, aggregation, "majority_vote",
          "none, majority_vote, weighted_vote or best_logprob");
ABSL_FLAG(std::string, regex, "", "answer extractor (default: the last \\boxed{...})");
ABSL_FLAG(bool, json, false, "print the final result as JSON");
ABSL_FLAG(std::string, api_key, "",
          "API key of the coordinator's --api_keys_file (default: $RAMI_API_KEY; none when "
          "both are empty)");

ABSL_FLAG(std::string, tls_ca_file, "",
          "connect with TLS, trusting this PEM CA bundle (default: $RAMI_TLS_CA; plaintext when "
          "both are empty)");

namespace {

namespace v1 = rami::v1;

// The flag's value, else the environment variable's, else "".
std::string FlagOrEnv(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value != nullptr ? value : "";
}

// A stub over plaintext, or TLS trusting --tls_ca_file / $RAMI_TLS_CA.
std::unique_ptr<v1::Inference::Stub> NewStub() {
  const std::string ca = FlagOrEnv(absl::GetFlag(FLAGS_tls_ca_file), "RAMI_TLS_CA");
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!ca.empty()) {
    std::ifstream in(ca);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in || pem.empty()) {
      std::fprintf(stderr, "rami: --tls_ca_file: cannot read %s\n", ca.c_str());
      std::exit(2);
    }
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pem;
    credentials = grpc::SslCredentials(options);
  }
  return v1::Inference::NewStub(grpc::CreateChannel(absl::GetFlag(FLAGS_server), credentials));
}

// A call's context, with the API key (--api_key, else $RAMI_API_KEY) when there is one.
std::unique_ptr<grpc::ClientContext> NewContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  const std::string key = FlagOrEnv(absl::GetFlag(FLAGS_api_key), "RAMI_API_KEY");
  if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
  return ctx;
}

int Generate(const std::string& prompt) {
  v1::GenerateRequest request;
  request.set_prompt(prompt);
  request.set_n(absl::GetFlag(FLAGS_n));
  request.mutable_sampling()->set_temperature(absl::GetFlag(FLAGS_temperature));
  request.mutable_sampling()->set_top_p(absl::GetFlag(FLAGS_top_p));
  request.mutable_sampling()->set_seed(absl::GetFlag(FLAGS_seed));
  request.mutable_stopping()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  const std::map<std::string, v1::AggregationPolicy> policies = {
      {"none", v1::NONE},
      {"majority_vote", v1::MAJORITY_VOTE},
      {"weighted_vote", v1::WEIGHTED_VOTE},
      {"best_logprob", v1::BEST_LOGPROB}};
  auto policy = policies.find(absl::GetFlag(FLAGS_aggregation));
  if (policy == policies.end()) {
    std::fprintf(stderr, "rami: --aggregation: unknown policy\n");
    return 2;
  }
  request.mutable_aggregation()->set_policy(policy->second);
  request.mutable_aggregation()->mutable_extractor()->set_regex(absl::GetFlag(FLAGS_regex));
  request.set_stream_deltas(true);

  std::unique_ptr<v1::Inference::Stub> stub = NewStub();
  std::unique_ptr<grpc::ClientContext> ctx = NewContext();
  std::unique_ptr<grpc::ClientReader<v1::GenerateEvent>> reader =
      stub->Generate(ctx.get(), request);
  const bool json = absl::GetFlag(FLAGS_json);
  const absl::Time start = absl::Now();
  const bool live = !json && isatty(fileno(stdout));  // progress line only on a terminal
  absl::Time shown_at = absl::InfinitePast();
  int done = 0, n = request.n();
  int64_t tokens = 0;
  std::map<std::string, int> votes;
  v1::Progress progress;
  v1::GenerateEvent event;
  std::optional<v1::Result> result;
  while (reader->Read(&event)) {
    if (event.has_accepted()) {
      n = event.accepted().n();
      if (!json) {
        std::printf("job %s: %d prompt tokens, %d branches\n", event.job_id().c_str(),
                    event.accepted().prompt_tokens(), n);
      }
    } else if (event.has_delta()) {
      tokens += event.delta().token_ids_size();
    } else if (event.has_branch_finished()) {
      ++done;
      ++votes[event.branch_finished().answer()];
    } else if (event.has_progress()) {
      progress = event.progress();
    } else if (event.has_result()) {
      result = event.result();
    } else if (event.has_error()) {
      std::fprintf(stderr, "\nrami: job failed: %s (code %d%s)\n", event.error().message().c_str(),
                   event.error().code(), event.error().retryable() ? ", retryable" : "");
      return 1;
    }
    if (live && absl::Now() - shown_at > absl::Milliseconds(100)) {
      shown_at = absl::Now();
      std::vector<std::string> shown;
      for (const auto& [answer, count] : votes) {
        shown.push_back(absl::StrCat(answer.empty() ? "(none)" : answer, ":", count));
      }
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      std::printf(
          "\rbranches running %d, done %d/%d | %lld tokens, %.0f tok/s | KV %.1f KiB, "
          "%.2fx | votes %s   ",
          progress.branches_running(), done, n, static_cast<long long>(tokens),
          seconds > 0 ? tokens / seconds : 0.0, progress.kv_bytes() / 1024.0,
          progress.compression_ratio(), absl::StrJoin(shown, " ").c_str());
      std::fflush(stdout);
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "\nrami: %s (code %d)\n", status.error_message().c_str(),
                 status.error_code());
    return 1;
  }
  if (!result.has_value()) return 1;
  if (json) {
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(*result, &out, options);
    std::printf("%s\n", out.c_str());
    return 0;
  }
  const v1::Usage& u = result->usage();
  std::vector<std::string> final_votes;
  for (const v1::Vote& v : result->votes()) {
    final_votes.push_back(absl::StrCat(v.answer().empty() ? "(none)" : v.answer(), ":", v.count()));
  }
  std::printf("%sbranches done %d/%d, votes %s\n", live ? "\n" : "", done, n,
              absl::StrJoin(final_votes, " ").c_str());
  std::printf("answer: %s\n", result->answer().empty() ? "(none)" : result->answer().c_str());
  std::printf(
      "usage: %lld generated tokens in %.0f ms (%.0f tok/s), TTFT %.1f ms, peak KV %.1f "
      "KiB, compression %.2fx\n",
      static_cast<long long>(u.generated_tokens()), u.elapsed_ms(), u.tokens_per_second(),
      u.time_to_first_token_ms(), u.peak_kv_bytes() / 1024.0, u.compression_ratio());
  return 0;
}

int Info() {
  std::unique_ptr<v1::Inference::Stub> stub = NewStub();
  std::unique_ptr<grpc::ClientContext> ctx = NewContext();
  v1::ServerInfo info;
  const grpc::Status status = stub->GetServerInfo(ctx.get(), v1::GetServerInfoRequest(), &info);
  if (!status.ok()) {
    std::fprintf(stderr, "rami: %s (code %d)\n", status.error_message().c_str(),
                 status.error_code());
    return 1;
  }
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(info, &out, options);
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the command-line client of rami's public API (rami.v1.Inference).\n"
      "  rami generate [flags] \"prompt\"  run a best-of-N job: live progress, then the votes "
      "and the answer\n"
      "  rami info [--server=ADDR]       the server's limits, scheduler statistics and worker "
      "groups");
  // --help lists this file's flags (Abseil's default looks for a file named after the binary).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "rami_cli.cc");
  };
  absl::SetFlagsUsageConfig(usage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() == 3 && std::string(args[1]) == "generate") return Generate(args[2]);
  if (args.size() == 2 && std::string(args[1]) == "info") return Info();
  std::fprintf(stderr, "usage: rami generate [--n=8] [--json] \"prompt\" | rami info\n");
  return 2;
}
