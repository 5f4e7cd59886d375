// Worker discovery sources: the group list syntax, the file source re-read, and the DNS
// source's host templates (StatefulSet pods of one or many GPUs, LeaderWorkerSet groups)
// against a fake resolver.
#include "coordinator/groups/worker_discovery.h"

#include <cstdio>
#include <fstream>
#include <set>

#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

using Groups = std::vector<WorkerGroupAddresses>;

TEST(ParseWorkerGroups, GroupsByLineOrSemicolon) {
  absl::StatusOr<Groups> g = ParseWorkerGroups("a:1,b:2;c:3,d:4", "--workers");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*g, (Groups{{"a:1", "b:2"}, {"c:3", "d:4"}}));
  g = ParseWorkerGroups("# groups\n a:1 , b:2  # first\n\n[::1]:5\n", "f");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*g, (Groups{{"a:1", "b:2"}, {"[::1]:5"}}));
  EXPECT_EQ(GroupKey((*g)[0]), "a:1,b:2");
}

TEST(ParseWorkerGroups, BadAddressesNameTheSourceAndTheAddress) {
  for (const char* bad : {"a", "a:", ":5", "a:0", "a:65536", "a:x", "a:1,,b:2"}) {
    absl::StatusOr<Groups> g = ParseWorkerGroups(bad, "--workers");
    ASSERT_FALSE(g.ok()) << bad;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(g.status().message().find("--workers"), std::string::npos) << g.status();
  }
  absl::StatusOr<Groups> twice = ParseWorkerGroups("a:1,b:2;b:2,c:3", "--workers");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("\"b:2\" appears twice"), std::string::npos);
}

TEST(FileDiscovery, ReReadsTheFileOnEveryLook) {
  const std::string path = ::testing::TempDir() + "/rami_discovery_test";
  std::ofstream(path) << "a:1,b:2\n";
  std::unique_ptr<WorkerDiscovery> d = MakeFileDiscovery(path);
  EXPECT_FALSE(d->fixed());
  EXPECT_EQ(*d->Groups(), (Groups{{"a:1", "b:2"}}));
  std::ofstream(path) << "a:1,b:2\nc:3,d:4\n";
  EXPECT_EQ(d->Groups()->size(), 2u);
  std::ofstream(path) << "a:1,nonsense\n";
  EXPECT_FALSE(d->Groups().ok());  // the runner keeps its groups on a bad read
  std::remove(path.c_str());
  EXPECT_EQ(d->Groups().status().code(), absl::StatusCode::kNotFound);
}

TEST(DnsDiscovery, StatefulSetOfSingleGpuPods) {
  DnsDiscoveryOptions o{"rami-worker-{pod}.rami-worker.ns.svc", 2, 50061, 1, 8};
  EXPECT_EQ(ExpandHostTemplate(o, 0), "rami-worker-0.rami-worker.ns.svc");
  EXPECT_EQ(ExpandHostTemplate(o, 5), "rami-worker-5.rami-worker.ns.svc");
  // Pods 0…4 resolve: groups {0,1} and {2,3}; pod 5 is missing, so group {4,5} is not ready.
  std::set<std::string> up;
  for (int p = 0; p < 5; ++p) up.insert(ExpandHostTemplate(o, p));
  absl::StatusOr<std::unique_ptr<WorkerDiscovery>> d =
      MakeDnsDiscovery(o, [&](const std::string& host) { return up.count(host) > 0; });
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(
      *(*d)->Groups(),
      (Groups{
          {"rami-worker-0.rami-worker.ns.svc:50061", "rami-worker-1.rami-worker.ns.svc:50061"},
          {"rami-worker-2.rami-worker.ns.svc:50061", "rami-worker-3.rami-worker.ns.svc:50061"}}));
}

TEST(DnsDiscovery, EightGpuPodsServeFourGroupsOrOneGroupSpansTwoPods) {
  // One pod with 8 workers on ports 50061…50068, four groups of T = 2.
  DnsDiscoveryOptions o{"w-{pod}.w", 2, 50061, 8, 4};
  absl::StatusOr<std::unique_ptr<WorkerDiscovery>> d =
      MakeDnsDiscovery(o, [](const std::string& host) { return host == "w-0.w"; });
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<Groups> g = (*d)->Groups();
  ASSERT_EQ(g->size(), 4u);
  EXPECT_EQ((*g)[3], (WorkerGroupAddresses{"w-0.w:50067", "w-0.w:50068"}));
  // T = 16 over 8-GPU pods: group 0 is pods 0 and 1, ranks 8…15 on pod 1's ports 50061….
  o = {"w-{pod}.w", 16, 50061, 8, 2};
  EXPECT_EQ(ExpandHostTemplate(o, 8), "w-1.w");
  d = MakeDnsDiscovery(o,
                       [](const std::string& host) { return host == "w-0.w" || host == "w-1.w"; });
  ASSERT_TRUE(d.ok());
  g = (*d)->Groups();
  ASSERT_EQ(g->size(), 1u);
  EXPECT_EQ((*g)[0][8], "w-1.w:50061");
  EXPECT_EQ((*g)[0][15], "w-1.w:50068");
}

TEST(DnsDiscovery, LeaderWorkerSetNames) {
  // LWS "rami", groups of 2 pods × 8 GPUs: leader rami-<g>, then rami-<g>-1.
  DnsDiscoveryOptions o{"rami-{group}{pod_suffix}.rami", 16, 50061, 8, 4};
  EXPECT_EQ(ExpandHostTemplate(o, 0), "rami-0.rami");
  EXPECT_EQ(ExpandHostTemplate(o, 9), "rami-0-1.rami");
  EXPECT_EQ(ExpandHostTemplate(o, 16), "rami-1.rami");
  EXPECT_EQ(ExpandHostTemplate(o, 31), "rami-1-1.rami");
  o.host_template = "{group}/{pod_in_group}/{pod}";
  EXPECT_EQ(ExpandHostTemplate(o, 25), "1/1/3");
}

TEST(DnsDiscovery, StopsLookingAfterEmptyGroups) {
  DnsDiscoveryOptions o{"w-{pod}", 1, 9000, 1, 4096};
  int lookups = 0;
  absl::StatusOr<std::unique_ptr<WorkerDiscovery>> d =
      MakeDnsDiscovery(o, [&](const std::string& host) {
        ++lookups;
        return host == "w-0" || host == "w-2";
      });
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->Groups()->size(), 2u);  // a gap of one pod does not hide later groups
  EXPECT_LT(lookups, 10);
}

TEST(DnsDiscovery, OptionsAreValidatedWithTheFlagName) {
  struct Case {
    DnsDiscoveryOptions options;
    const char* names;
  };
  for (const Case& c :
       {Case{{"", 2, 1, 1, 1}, "template"}, Case{{"h", 0, 1, 1, 1}, "--tp"},
        Case{{"h", 2, 0, 1, 1}, "--worker_port"}, Case{{"h", 2, 65535, 2, 1}, "--worker_port"},
        Case{{"h", 2, 1, 0, 1}, "--workers_per_pod"}, Case{{"h", 2, 1, 1, 0}, "--max_groups"},
        Case{{"h", 3, 1, 2, 1}, "--workers_per_pod"}}) {
    const absl::Status s = ValidateDnsOptions(c.options);
    ASSERT_FALSE(s.ok()) << c.names;
    EXPECT_NE(s.message().find(c.names), std::string::npos) << s;
  }
}

TEST(MakeDiscovery, ParsesTheFlag) {
  DnsDiscoveryOptions dns{"", 2, 50061, 1, 4};
  absl::StatusOr<std::unique_ptr<WorkerDiscovery>> d = MakeDiscovery("static:a:1,b:2", dns);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE((*d)->fixed());
  EXPECT_TRUE(MakeDiscovery("file:/tmp/x", dns).ok());
  EXPECT_TRUE(MakeDiscovery("dns:w-{pod}.w", dns).ok());
  EXPECT_FALSE(MakeDiscovery("static:", dns).ok());
  EXPECT_FALSE(MakeDiscovery("file:", dns).ok());
  EXPECT_FALSE(MakeDiscovery("dns:", dns).ok());
  const absl::StatusOr<std::unique_ptr<WorkerDiscovery>> bad = MakeDiscovery("consul:x", dns);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--worker_discovery"), std::string::npos);
}

}  // namespace
}  // namespace rami::coordinator
