// The runner's worker groups: their life cycle (load, serve, fail and evacuate, reload, leave),
// discovery refreshes and lease renewals.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/service/job_runner.h"
#include "coordinator/service/runner_job.h"

namespace rami::coordinator {
namespace {

namespace wv1 = worker::v1;

// Load errors that a retry cannot fix (a bad model directory, a bad flag).
bool Permanent(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kNotFound || s.code() == absl::StatusCode::kUnimplemented ||
         s.code() == absl::StatusCode::kDataLoss;
}

}  // namespace

absl::Status JobRunner::LoadGroup(Group& g) {
  GroupLoadOptions options = config_.load;
  // The epoch orders this coordinator's loads after every earlier one, a restarted
  // coordinator's included; the group id keeps the collectives' rendezvous keys apart.
  const int64_t epoch = absl::ToUnixMicros(absl::Now());
  options.lease_holder = config_.coordinator_id;
  options.lease_epoch = epoch;
  options.group_id = absl::StrCat(config_.coordinator_id, "-g", g.id, "-", epoch);
  absl::StatusOr<wv1::LoadShardResponse> load = g.client->Load(options);
  absl::MutexLock lock(&mu_);
  if (!load.ok()) {
    g.error = load.status();
    g.permanent_error = Permanent(load.status());
    last_load_error_ = absl::Status(load.status().code(),
                                    absl::StrCat("group ", g.key, ": ", load.status().message()));
    return load.status();
  }
  g.scheduler = std::make_unique<Scheduler>(config_.scheduler);
  g.capacity = Capacity();
  g.capacity.free_pages = load->num_pages();
  g.capacity.page_size = load->page_size();
  g.capacity.streams = int64_t{load->num_layers()} * load->num_kv_heads();
  g.capacity.evicts = load->dms_window() > 0;
  g.capacity.window = load->dms_window();
  g.num_pages = load->num_pages();
  g.bytes_per_token =
      load->num_pages() > 0 ? load->kv_cache_bytes() / load->num_pages() / load->page_size() : 0;
  g.lease_epoch = epoch;
  g.owner.clear();
  g.decode_need_ahead.clear();
  g.in_flight.clear();
  g.error = absl::OkStatus();
  g.permanent_error = false;
  g.state = GroupState::kServing;
  if (cache_policy_.empty()) cache_policy_ = load->cache_policy();
  std::fprintf(stderr,
               "rami-coordinator: group %d (%s) serves: %lld pages of %d tokens per rank, "
               "policy %s\n",
               g.id, g.key.c_str(), static_cast<long long>(load->num_pages()), load->page_size(),
               load->cache_policy().c_str());
  work_.SignalAll();
  return absl::OkStatus();
}

void JobRunner::GroupLoop(Group* g) {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_ || g->leaving) break;
    }
    if (!LoadGroup(*g).ok()) {
      absl::MutexLock lock(&mu_);
      work_.WaitWithTimeout(&mu_, config_.reload_backoff);
      continue;
    }
    // Serve until the group fails, leaves or the runner stops.
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        if (g->state != GroupState::kServing || g->leaving) break;
        bool has_work = false;
        for (const auto& [id, rj] : jobs_) has_work |= rj->parts.count(g->id) > 0;
        if (!has_work && g->in_flight.empty()) {
          work_.WaitWithTimeout(&mu_, absl::Milliseconds(50));
          continue;
        }
      }
      if (!StepOnce(*g)) {
        absl::MutexLock lock(&mu_);
        work_.WaitWithTimeout(&mu_, absl::Milliseconds(5));
      }
    }
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    if (g->leaving) {
      if (g->state == GroupState::kServing) {
        Evacuate(*g, absl::UnavailableError(absl::StrCat("worker group ", g->key, " left")));
      }
      break;
    }
    // Failed: its branches have moved; try to load it again after a pause (a restarted
    // worker comes back this way).
    work_.WaitWithTimeout(&mu_, config_.reload_backoff);
  }
  absl::MutexLock lock(&mu_);
  g->state = GroupState::kGone;
}

void JobRunner::Evacuate(Group& g, const absl::Status& why) {
  g.state = g.leaving ? GroupState::kGone : GroupState::kFailed;
  g.error = why;
  g.owner.clear();
  g.decode_need_ahead.clear();
  g.in_flight.clear();
  std::fprintf(stderr, "rami-coordinator: group %d (%s): %s\n", g.id, g.key.c_str(),
               why.ToString().c_str());
  for (auto& [id, rj] : jobs_) {
    auto part = rj->parts.find(g.id);
    if (part == rj->parts.end()) continue;
    std::vector<Branch> moving;
    for (Branch& b : part->second.branches) {
      if (b.phase != BranchPhase::kFinished) moving.push_back(std::move(b));
    }
    rj->parts.erase(part);  // its sequences went with the group
    if (rj->done || moving.empty()) continue;
    stats_.relocated_branches += static_cast<int64_t>(moving.size());
    rj->relocated_branches += static_cast<int>(moving.size());
    if (++rj->relocations > config_.max_relocations) {
      FailJob(*rj,
              absl::UnavailableError(
                  absl::StrCat("the job's branches had to move ", rj->relocations,
                               " times (worker groups failed under it); last: ", why.ToString())),
              /*retryable=*/true);
      continue;
    }
    if (!Place(*rj, std::move(moving))) {
      FailJob(*rj,
              absl::UnavailableError(absl::StrCat(
                  "no worker group is left to run the job's branches: ", why.ToString())),
              /*retryable=*/true);
    }
  }
  Reap();
  work_.SignalAll();
}

void JobRunner::Reap() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    it = it->second->done && !it->second->HoldsSequences() ? jobs_.erase(it) : std::next(it);
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
    for (const auto& [id, g] : groups_) known |= g->key == key && !g->leaving;
    if (known) continue;
    auto g = std::make_unique<Group>();
    g->id = next_group_++;
    g->addresses = addresses;
    g->key = key;
    g->client = std::make_unique<WorkerGroupClient>(addresses);
    Group* raw = g.get();
    groups_[g->id] = std::move(g);
    raw->thread = std::thread([this, raw] { GroupLoop(raw); });
  }
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& g = *it->second;
    if (!keys.count(g.key) && !g.leaving) {
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
      std::vector<Group*> serving;
      {
        absl::MutexLock lock(&mu_);
        for (auto& [id, g] : groups_) {
          if (g->state == GroupState::kServing && !g->leaving) serving.push_back(g.get());
        }
      }
      // Groups are erased only by this thread, so the pointers stay valid here.
      for (Group* g : serving) {
        if (absl::Status s = g->client->RenewLease(); !s.ok()) {
          std::fprintf(stderr, "rami-coordinator: group %d: lease renewal: %s\n", g->id,
                       s.ToString().c_str());
          if (s.code() == absl::StatusCode::kFailedPrecondition) {
            g->client->Cancel();  // another coordinator holds it: the step loop fails it
          }
        }
      }
      next_renew = absl::Now() + renew_every;
    }
  }
}

}  // namespace rami::coordinator
