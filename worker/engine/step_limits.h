// StepLimits: the largest step a shard runs.
#pragma once

namespace rami::engine {

// The largest step a shard runs: the device backend reserves its buffers for it at load, and
// the Engine refuses a plan beyond it (the coordinator's scheduler plans within the same
// limits: SchedulerConfig max_step_tokens, max_step_sequences).
struct StepLimits {
  int max_step_tokens = 2048;    // prefill and decode tokens of one step
  int max_step_sequences = 256;  // sequences with tokens in one step (prefills + decodes)
};

}  // namespace rami::engine
