// The runner's maintenance thread: it follows the discovery source (new groups get a thread,
// groups no longer listed leave) and renews the workers' leases between steps.
#include <algorithm>
#include <set>

#include "absl/time/clock.h"
#include "coordinator/runner/job_runner.h"

namespace rami::coordinator {

void JobRunner::Maintain() {
  absl::Time next_refresh = absl::Now() + config_.discovery_interval;
  // Leases are renewed three times per lease period (steps renew them too).
  const absl::Duration renew_every = absl::Seconds(config_.load.lease_seconds / 3);
  absl::Time next_renew = absl::Now() + renew_every;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time wake = std::min(next_refresh, next_renew);
      while (!stop_ && absl::Now() < wake) work_.WaitWithDeadline(&mu_, wake);
      if (stop_) return;
    }
    if (absl::Now() >= next_refresh) {
      if (!discovery_->fixed()) Refresh();
      next_refresh = absl::Now() + config_.discovery_interval;
    }
    if (absl::Now() >= next_renew) {
      RenewLeases();
      next_renew = absl::Now() + renew_every;
    }
  }
}

void JobRunner::Refresh() {
  absl::StatusOr<std::vector<WorkerGroupAddresses>> listed = discovery_->Groups();
  if (!listed.ok()) {
    std::fprintf(stderr, "rami-coordinator: worker discovery: %s\n",
                 listed.status().ToString().c_str());
    return;
  }
  std::set<std::string> keys;
  absl::MutexLock lock(&mu_);
  if (stop_) return;
  for (const WorkerGroupAddresses& addresses : *listed) {
    const std::string key = GroupKey(addresses);
    keys.insert(key);
    bool known = false;
    for (const auto& [id, g] : groups_) known |= g->key() == key && !g->leaving;
    if (known) continue;
    auto g = std::make_unique<WorkerGroup>(next_group_++, addresses);
    g->client = std::make_unique<WorkerGroupClient>(addresses, config_.worker_auth_token,
                                                    config_.worker_tls);
    WorkerGroup* raw = g.get();
    groups_[g->id()] = std::move(g);
    raw->thread = std::thread([this, raw] { GroupLoop(raw); });
  }
  for (auto it = groups_.begin(); it != groups_.end();) {
    WorkerGroup& g = *it->second;
    if (!keys.count(g.key()) && !g.leaving) {
      g.leaving = true;  // its thread evacuates it
      g.client->Cancel();
    }
    if (g.state == GroupState::kGone && g.thread.joinable()) {
      g.thread.join();  // it set kGone as its last act and holds no lock now
      it = groups_.erase(it);
      continue;
    }
    ++it;
  }
  work_.SignalAll();
}

void JobRunner::RenewLeases() {
  std::vector<WorkerGroup*> serving;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, g] : groups_) {
      if (g->state == GroupState::kServing && !g->leaving) serving.push_back(g.get());
    }
  }
  // Groups are erased only by this thread, so the pointers stay valid here.
  for (WorkerGroup* g : serving) {
    if (absl::Status s = g->client->RenewLease(); !s.ok()) {
      std::fprintf(stderr, "rami-coordinator: group %d: lease renewal: %s\n", g->id(),
                   s.ToString().c_str());
      if (s.code() == absl::StatusCode::kFailedPrecondition) {
        g->client->Cancel();  // another coordinator holds it: the step loop fails it
      }
    }
  }
}

}  // namespace rami::coordinator
