// DecodeGraphPolicy: per-key state, the capture's outcome and the ranks' agreement.
#include "worker/engine/decode_graph_policy.h"

namespace rami::engine {

DecodeGraphPolicy::Action DecodeGraphPolicy::Begin(Key key,
                                                   const std::vector<const void*>& pointers) {
  key_ = key;
  captured_ok_ = false;
  failed_here_ = false;
  dropped_ = false;
  Entry& e = entries_[key];
  if (e.has_graph && e.pointers != pointers) {  // a buffer moved: capture again
    e.has_graph = false;
    dropped_ = true;
  }
  if (e.eager_only || (!e.has_graph && e.seen++ == 0)) {
    action_ = Action::kEager;
  } else if (!e.has_graph) {
    action_ = Action::kCapture;
    pointers_ = pointers;
  } else {
    action_ = Action::kReplay;
  }
  return action_;
}

void DecodeGraphPolicy::Captured(bool ok) {
  captured_ok_ = ok;
  failed_here_ = !ok;
}

DecodeGraphPolicy::Action DecodeGraphPolicy::Agree(bool any_failed) {
  Entry& e = entries_[key_];
  dropped_ = false;  // Begin's drop was handled before the capture
  if (any_failed) {
    // This rank's key of the step fails with the group: no graph (a fresh capture or the one
    // it was replaying is dropped), eager from now on.
    if ((action_ == Action::kCapture && captured_ok_) || e.has_graph) dropped_ = true;
    e.has_graph = false;
    e.eager_only = true;
    ++stats_.failed;
    ++stats_.eager;
    return Action::kEager;
  }
  switch (action_) {
    case Action::kEager:
      ++stats_.eager;
      return Action::kEager;
    case Action::kCapture:
      e.has_graph = true;
      e.pointers = pointers_;
      ++stats_.captures;
      ++stats_.replays;
      return Action::kReplay;
    case Action::kReplay:
      ++stats_.replays;
      return Action::kReplay;
  }
  return Action::kEager;
}

}  // namespace rami::engine
