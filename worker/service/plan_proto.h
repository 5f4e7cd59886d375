// Conversions between the rami.worker.v1 messages and the worker core's plain structs.
#pragma once

#include "absl/status/statusor.h"
#include "rami/worker/v1/worker.pb.h"
#include "worker/engine/engine.h"
#include "worker/engine/step_plan.h"

namespace rami::service {

// INVALID_ARGUMENT naming the field for a malformed prefill: copy_of without create, token_ids
// empty without copy_of. The Engine checks these and everything else again (Engine::Validate).
absl::StatusOr<engine::StepPlan> PlanFromProto(const worker::v1::StepPlan& proto);
void OutcomeToProto(const engine::StepOutcome& outcome, uint64_t step_id, int rank,
                    worker::v1::StepResult* proto);
void CacheToProto(const engine::CacheReport& report, int rank, worker::v1::RankCache* proto);

}  // namespace rami::service
