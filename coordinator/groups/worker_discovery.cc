// Worker group sources: static, file, DNS.
#include "coordinator/groups/worker_discovery.h"

#include <netdb.h>
#include <sys/socket.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rami::coordinator {
namespace {

absl::Status CheckAddress(absl::string_view address, absl::string_view what) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", address, "\" is not host:port with a port in 1…65535"));
  }
  return absl::OkStatus();
}

class StaticDiscovery final : public WorkerDiscovery {
 public:
  explicit StaticDiscovery(std::vector<WorkerGroupAddresses> groups) : groups_(std::move(groups)) {}
  absl::StatusOr<std::vector<WorkerGroupAddresses>> Groups() override { return groups_; }
  bool fixed() const override { return true; }

 private:
  std::vector<WorkerGroupAddresses> groups_;
};

class FileDiscovery final : public WorkerDiscovery {
 public:
  explicit FileDiscovery(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::vector<WorkerGroupAddresses>> Groups() override {
    std::ifstream in(path_);
    if (!in) return absl::NotFoundError(absl::StrCat("worker discovery: cannot read ", path_));
    std::stringstream text;
    text << in.rdbuf();
    return ParseWorkerGroups(text.str(), path_);
  }

 private:
  std::string path_;
};

bool SystemResolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (result != nullptr) freeaddrinfo(result);
  return rc == 0;
}

class DnsDiscovery final : public WorkerDiscovery {
 public:
  DnsDiscovery(DnsDiscoveryOptions options, HostResolver resolves)
      : options_(std::move(options)), resolves_(std::move(resolves)) {}

  absl::StatusOr<std::vector<WorkerGroupAddresses>> Groups() override {
    std::vector<WorkerGroupAddresses> groups;
    // Scaling a StatefulSet down leaves names that no longer resolve: stop after a few empty
    // groups in a row rather than resolving max_groups · tp names every refresh.
    constexpr int kEmptyGroupsToStop = 4;
    int empty_in_a_row = 0;
    for (int g = 0; g < options_.max_groups && empty_in_a_row < kEmptyGroupsToStop; ++g) {
      WorkerGroupAddresses group;
      int resolved = 0;
      for (int r = 0; r < options_.tp; ++r) {
        const int ordinal = g * options_.tp + r;
        const std::string host = ExpandHostTemplate(options_, ordinal);
        if (resolves_(host)) ++resolved;
        group.push_back(
            absl::StrCat(host, ":", options_.port + ordinal % options_.workers_per_pod));
      }
      empty_in_a_row = resolved == 0 ? empty_in_a_row + 1 : 0;
      if (resolved == options_.tp) groups.push_back(std::move(group));
    }
    return groups;
  }

 private:
  DnsDiscoveryOptions options_;
  HostResolver resolves_;
};

}  // namespace

absl::StatusOr<std::vector<WorkerGroupAddresses>> ParseWorkerGroups(absl::string_view text,
                                                                    absl::string_view what) {
  std::vector<WorkerGroupAddresses> groups;
  std::set<std::string, std::less<>> seen;
  for (absl::string_view line : absl::StrSplit(text, absl::ByAnyChar(";\n"))) {
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    WorkerGroupAddresses group;
    for (absl::string_view address : absl::StrSplit(line, ',')) {
      address = absl::StripAsciiWhitespace(address);
      if (absl::Status s = CheckAddress(address, what); !s.ok()) return s;
      if (!seen.insert(std::string(address)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": \"", address, "\" appears twice (a worker serves one group)"));
      }
      group.emplace_back(address);
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

std::string GroupKey(const WorkerGroupAddresses& group) { return absl::StrJoin(group, ","); }

std::unique_ptr<WorkerDiscovery> MakeStaticDiscovery(std::vector<WorkerGroupAddresses> groups) {
  return std::make_unique<StaticDiscovery>(std::move(groups));
}

std::unique_ptr<WorkerDiscovery> MakeFileDiscovery(std::string path) {
  return std::make_unique<FileDiscovery>(std::move(path));
}

absl::Status ValidateDnsOptions(const DnsDiscoveryOptions& o) {
  auto bad = [](absl::string_view flag, absl::string_view limit, auto value) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker discovery: ", flag, ": expected ", limit, ", found ", value));
  };
  if (o.host_template.empty()) return bad("dns host template", "a host name", "\"\"");
  if (o.tp < 1 || o.tp > 64) return bad("--tp", "1…64", o.tp);
  if (o.workers_per_pod < 1 || o.workers_per_pod > 64) {
    return bad("--workers_per_pod", "1…64", o.workers_per_pod);
  }
  if (o.max_groups < 1 || o.max_groups > 4096) return bad("--max_groups", "1…4096", o.max_groups);
  if (o.port < 1 || o.port + o.workers_per_pod - 1 > 65535) {
    return bad("--worker_port", absl::StrCat("1…", 65536 - o.workers_per_pod), o.port);
  }
  if (o.tp % o.workers_per_pod != 0 && o.workers_per_pod % o.tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker discovery: --tp (", o.tp, ") and --workers_per_pod (", o.workers_per_pod,
        "): one must divide the other, so that a group spans whole pods or a pod whole groups"));
  }
  return absl::OkStatus();
}

std::string ExpandHostTemplate(const DnsDiscoveryOptions& o, int ordinal) {
  const int pod_in_group = (ordinal % o.tp) / o.workers_per_pod;
  return absl::StrReplaceAll(
      o.host_template,
      {{"{pod}", absl::StrCat(ordinal / o.workers_per_pod)},
       {"{group}", absl::StrCat(ordinal / o.tp)},
       {"{pod_in_group}", absl::StrCat(pod_in_group)},
       {"{pod_suffix}", pod_in_group == 0 ? std::string() : absl::StrCat("-", pod_in_group)}});
}

absl::StatusOr<std::unique_ptr<WorkerDiscovery>> MakeDnsDiscovery(DnsDiscoveryOptions options,
                                                                  HostResolver resolves) {
  if (absl::Status s = ValidateDnsOptions(options); !s.ok()) return s;
  if (!resolves) resolves = SystemResolves;
  return std::make_unique<DnsDiscovery>(std::move(options), std::move(resolves));
}

absl::StatusOr<std::unique_ptr<WorkerDiscovery>> MakeDiscovery(absl::string_view spec,
                                                               DnsDiscoveryOptions dns) {
  if (absl::ConsumePrefix(&spec, "static:")) {
    absl::StatusOr<std::vector<WorkerGroupAddresses>> groups = ParseWorkerGroups(spec, "--workers");
    if (!groups.ok()) return groups.status();
    if (groups->empty()) {
      return absl::InvalidArgumentError("--workers: at least one group of host:port addresses");
    }
    return MakeStaticDiscovery(*std::move(groups));
  }
  if (absl::ConsumePrefix(&spec, "file:")) {
    if (spec.empty()) return absl::InvalidArgumentError("--worker_discovery=file: needs a path");
    return MakeFileDiscovery(std::string(spec));
  }
  if (absl::ConsumePrefix(&spec, "dns:")) {
    dns.host_template = std::string(spec);
    return MakeDnsDiscovery(std::move(dns));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--worker_discovery: expected static:GROUPS, file:PATH or dns:HOST_TEMPLATE, "
                   "found \"",
                   spec, "\""));
}

}  // namespace rami::coordinator
