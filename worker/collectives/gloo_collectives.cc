// GlooCollectives: rendezvous through a RendezvousStore, a full TCP mesh, and the three
// collectives, with Gloo's exceptions turned into absl::Status at this boundary.
#include "worker/collectives/gloo_collectives.h"

#include <signal.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/broadcast.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/tcp/device.h"

namespace rami::collectives {
namespace {

// A RendezvousStore failure carried through Gloo's rendezvous code (which only knows
// exceptions) back to Create, status intact.
class StoreError : public std::runtime_error {
 public:
  explicit StoreError(absl::Status status)
      : std::runtime_error(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// Gloo's store interface over a RendezvousStore (borrowed, must outlive the rendezvous), every
// key under "<prefix>/". Gloo 0.5.0's connectFullMesh calls get() without a prior wait(), so
// get() blocks until the key exists. All lookups share one deadline, so the whole store phase
// of a rendezvous takes at most `timeout`, however many keys Gloo reads one after the other.
class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(RendezvousStore* store, std::string prefix, absl::Time deadline)
      : store_(store), prefix_(std::move(prefix)), deadline_(deadline) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    const absl::Status status = store_->Set(Key(key), std::string(data.begin(), data.end()));
    if (!status.ok()) throw StoreError(status);
  }

  std::vector<char> get(const std::string& key) override {
    const std::string value = Fetch({key}, absl::InfiniteDuration()).front();
    return std::vector<char>(value.begin(), value.end());
  }

  void wait(const std::vector<std::string>& keys) override {
    Fetch(keys, absl::InfiniteDuration());
  }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    Fetch(keys, absl::FromChrono(timeout));
  }

 private:
  std::string Key(const std::string& key) const { return absl::StrCat(prefix_, "/", key); }

  // The values of `keys`, waiting at most `timeout` and never past the deadline.
  std::vector<std::string> Fetch(const std::vector<std::string>& keys, absl::Duration timeout) {
    std::vector<std::string> full_keys;
    for (const std::string& key : keys) full_keys.push_back(Key(key));
    const absl::Duration left =
        std::max(absl::ZeroDuration(), std::min(timeout, deadline_ - absl::Now()));
    absl::StatusOr<std::vector<std::string>> values = store_->Get(full_keys, left);
    if (!values.ok()) throw StoreError(values.status());
    return *std::move(values);
  }

  RendezvousStore* const store_;
  const std::string prefix_;
  const absl::Time deadline_;
};

// See the header: a dead peer must fail a collective, not kill the process.
void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current = {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && !(current.sa_flags & SA_SIGINFO) &&
        current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}

// The status for a Gloo exception: DeadlineExceeded when Gloo ran out its timeout (its messages
// then say "Timed out ..." or "Connect timeout ..."), Unavailable otherwise (a peer closed its
// connection, a refused connect, a socket error).
absl::Status GlooFailure(absl::string_view what, int rank, int world_size, absl::Duration timeout,
                         absl::Duration elapsed, absl::string_view error) {
  const std::string lower = absl::AsciiStrToLower(error);
  const bool timed_out =
      absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout");
  const std::string message =
      absl::StrCat("Gloo ", what, timed_out ? " timed out" : " failed", " on rank ", rank, " of ",
                   world_size, " after ", absl::FormatDuration(elapsed), " (timeout ",
                   absl::FormatDuration(timeout), "): ", error);
  return timed_out ? absl::DeadlineExceededError(message) : absl::UnavailableError(message);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GlooCollectives>> GlooCollectives::Create(
    int rank, int world_size, RendezvousStore* store, const std::string& key_prefix,
    const std::string& bind_host, absl::Duration timeout) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("GlooCollectives: rank ", rank, " is not in a world of ", world_size));
  }
  if (timeout < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GlooCollectives: timeout must be at least 1ms, got ", absl::FormatDuration(timeout)));
  }
  if (world_size == 1) {
    return std::unique_ptr<GlooCollectives>(
        new GlooCollectives(rank, world_size, timeout, nullptr));
  }
  if (store == nullptr) {
    return absl::InvalidArgumentError("GlooCollectives: a world of several ranks needs a store");
  }
  IgnoreSigpipeOnce();

  const absl::Time start = absl::Now();
  const std::string what = absl::StrCat("rendezvous (key prefix '", key_prefix, "')");
  try {
    // The device owns the listening sockets and the event-loop thread; the context shares it.
    gloo::transport::tcp::attr attr;
    attr.hostname = bind_host;
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, world_size);
    // Trap 12: the context's timeout bounds the pair connections (5 x, Gloo's choice) and is
    // the default of every collective's options, which the collectives set again explicitly.
    // The store phase is bounded by the adapter's deadline.
    context->setTimeout(absl::ToChronoMilliseconds(timeout));
    GlooStoreAdapter adapter(store, key_prefix, start + timeout);
    context->connectFullMesh(adapter, device);
    return std::unique_ptr<GlooCollectives>(
        new GlooCollectives(rank, world_size, timeout, std::move(context)));
  } catch (const StoreError& e) {
    const absl::Status& status = e.status();
    const bool timed_out = status.code() == absl::StatusCode::kDeadlineExceeded;
    return absl::Status(
        status.code(),
        absl::StrCat("Gloo ", what, timed_out ? " timed out" : " failed", " on rank ", rank, " of ",
                     world_size, " after ", absl::FormatDuration(absl::Now() - start), " (timeout ",
                     absl::FormatDuration(timeout), "): ", status.message()));
  } catch (const std::exception& e) {
    return GlooFailure(what, rank, world_size, timeout, absl::Now() - start, e.what());
  } catch (...) {
    return GlooFailure(what, rank, world_size, timeout, absl::Now() - start, "unknown exception");
  }
}

GlooCollectives::GlooCollectives(int rank, int world_size, absl::Duration timeout,
                                 std::shared_ptr<gloo::Context> context)
    : rank_(rank), world_size_(world_size), timeout_(timeout), context_(std::move(context)) {}

// Out of line: gloo::Context is complete only here. Closes the pairs and joins the loop thread.
GlooCollectives::~GlooCollectives() = default;

absl::Status GlooCollectives::CheckCall(const char* collective, const void* data,
                                        size_t count) const {
  if (!broken_.ok()) return broken_;
  if (data == nullptr && count > 0) {
    return absl::InvalidArgumentError(absl::StrCat("Gloo ", collective, " on rank ", rank_,
                                                   ": null buffer of ", count, " elements"));
  }
  return absl::OkStatus();
}

absl::Status GlooCollectives::Run(const char* collective,
                                  absl::FunctionRef<void(uint32_t tag)> body) {
  const absl::Time start = absl::Now();
  std::string error;
  try {
    body(next_tag_++);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  const absl::Status status =
      GlooFailure(collective, rank_, world_size_, timeout_, absl::Now() - start, error);
  broken_ = absl::FailedPreconditionError(
      absl::StrCat("collectives broken by an earlier failure: ", status.message()));
  // The mesh is in an unknown state (Gloo's docs: recreate it after an IoException). Closing it
  // wakes peers blocked in this collective and stops late messages from reaching our buffers.
  try {
    context_->closeConnections();
  } catch (...) {
    // Already failing; the status above says why.
  }
  return status;
}

absl::Status GlooCollectives::AllReduceSum(float* data, size_t count) {
  RAMI_RETURN_IF_ERROR(CheckCall("AllReduceSum", data, count));
  if (world_size_ == 1 || count == 0) return absl::OkStatus();
  gloo::AllreduceOptions opts(context_);  // outlives Run (see Run)
  return Run("AllReduceSum", [&](uint32_t tag) {
    opts.setOutput(data, count);  // in place: no input buffer
    opts.setReduceFunction(
        static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
    opts.setTag(tag);
    opts.setTimeout(absl::ToChronoMilliseconds(timeout_));
    gloo::allreduce(opts);
  });
}

absl::Status GlooCollectives::AllGather(const float* in, size_t count, float* out) {
  RAMI_RETURN_IF_ERROR(CheckCall("AllGather", in, count));
  RAMI_RETURN_IF_ERROR(CheckCall("AllGather", out, count));
  if (count == 0) return absl::OkStatus();
  float* const own_slot = out + static_cast<size_t>(rank_) * count;
  if (world_size_ == 1) {
    if (in != own_slot) std::copy(in, in + count, own_slot);
    return absl::OkStatus();
  }
  gloo::AllgatherOptions opts(context_);  // outlives Run (see Run)
  return Run("AllGather", [&](uint32_t tag) {
    // Gloo copies `in` into our slot of `out` before the ring starts and never writes to it;
    // its buffer API just takes non-const pointers. Without an input it gathers in place.
    if (in != own_slot) opts.setInput(const_cast<float*>(in), count);
    opts.setOutput(out, count * static_cast<size_t>(world_size_));
    opts.setTag(tag);
    opts.setTimeout(absl::ToChronoMilliseconds(timeout_));
    gloo::allgather(opts);
  });
}

absl::Status GlooCollectives::Broadcast(float* data, size_t count, int root) {
  RAMI_RETURN_IF_ERROR(CheckCall("Broadcast", data, count));
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(absl::StrCat("Gloo Broadcast on rank ", rank_, ": root ",
                                                   root, " is not in a world of ", world_size_));
  }
  if (world_size_ == 1 || count == 0) return absl::OkStatus();
  gloo::BroadcastOptions opts(context_);  // outlives Run (see Run)
  return Run("Broadcast", [&](uint32_t tag) {
    opts.setOutput(data, count);  // the root sends from it, the others receive into it
    opts.setRoot(root);
    opts.setTag(tag);
    opts.setTimeout(absl::ToChronoMilliseconds(timeout_));
    gloo::broadcast(opts);
  });
}

}  // namespace rami::collectives
