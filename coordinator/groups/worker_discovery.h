// WorkerDiscovery: where the coordinator's tensor-parallel worker groups are. One interface,
// three sources: a static list (flags), a file re-read on every refresh (tests, and anything
// that can write a file), and DNS names of the pods of a Kubernetes StatefulSet or
// LeaderWorkerSet behind a headless Service (re-resolved on every refresh). The runner asks
// for the current groups periodically; groups may appear and disappear between two asks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace rami::coordinator {

// One group: the host:port of its ranks, in rank order.
using WorkerGroupAddresses = std::vector<std::string>;

// "h:p,h:p;h:p,h:p" or one group per line ('#' starts a comment; blank lines are skipped):
// groups are separated by ';' or newlines, ranks by ','. Every address is host:port with a
// port in 1…65535, and no address appears twice. `what` names the source in errors.
absl::StatusOr<std::vector<WorkerGroupAddresses>> ParseWorkerGroups(absl::string_view text,
                                                                    absl::string_view what);

// The canonical name of a group (its addresses joined), stable across refreshes.
std::string GroupKey(const WorkerGroupAddresses& group);

class WorkerDiscovery {
 public:
  virtual ~WorkerDiscovery() = default;
  // The groups that exist now. An error keeps the previous list (a transient failure of the
  // source must not drop running groups).
  virtual absl::StatusOr<std::vector<WorkerGroupAddresses>> Groups() = 0;
  // True when the list never changes (the static source).
  virtual bool fixed() const { return false; }
};

std::unique_ptr<WorkerDiscovery> MakeStaticDiscovery(std::vector<WorkerGroupAddresses> groups);
std::unique_ptr<WorkerDiscovery> MakeFileDiscovery(std::string path);

// Worker ordinal o (0 … max_groups·tp − 1) is served at host `host_template` with its
// placeholders filled, port `port + o % workers_per_pod`:
//   {pod}          o / workers_per_pod            (StatefulSet: name-{pod}.service)
//   {group}        o / tp
//   {pod_in_group} (o % tp) / workers_per_pod
//   {pod_suffix}   "" when pod_in_group is 0, else "-" + pod_in_group (LeaderWorkerSet pods:
//                  the leader is NAME-<group>, the others NAME-<group>-<i>)
// Group g is ordinals g·tp … g·tp + tp − 1 and exists once every rank's host resolves.
struct DnsDiscoveryOptions {
  std::string host_template;
  int tp = 1;
  int port = 50061;
  int workers_per_pod = 1;
  int max_groups = 64;
};
absl::Status ValidateDnsOptions(const DnsDiscoveryOptions& options);
std::string ExpandHostTemplate(const DnsDiscoveryOptions& options, int ordinal);
// `resolves(host)`: true when the name has an address now (default: getaddrinfo).
using HostResolver = std::function<bool(const std::string& host)>;
absl::StatusOr<std::unique_ptr<WorkerDiscovery>> MakeDnsDiscovery(DnsDiscoveryOptions options,
                                                                  HostResolver resolves = {});

// The --worker_discovery flag: "static:<groups>", "file:<path>" or "dns:<host template>" (the
// DNS numbers come from `dns`).
absl::StatusOr<std::unique_ptr<WorkerDiscovery>> MakeDiscovery(absl::string_view spec,
                                                               DnsDiscoveryOptions dns);

}  // namespace rami::coordinator
