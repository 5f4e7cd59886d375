// Conversions between the rami.worker.v1 messages and the worker core's plain structs.
#pragma once

#include "rami/worker/v1/worker.pb.h"
#include "worker/engine/engine.h"
#include "worker/engine/step_plan.h"

namespace rami::service {

engine::StepPlan PlanFromProto(const worker::v1::StepPlan& proto);
void OutcomeToProto(const engine::StepOutcome& outcome, uint64_t step_id, int rank,
                    worker::v1::StepResult* proto);
void CacheToProto(const engine::CacheReport& report, int rank, worker::v1::RankCache* proto);

}  // namespace rami::service
