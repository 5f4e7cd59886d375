// Small Status helpers: Debian's Abseil 20220623 ships absl::Status/StatusOr but not the
// RETURN_IF_ERROR / ASSIGN_OR_RETURN macros (docs/contributing.md, toolchain note 7), so rami defines its own.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RAMI_STATUS_CONCAT_INNER_(a, b) a##b
#define RAMI_STATUS_CONCAT_(a, b) RAMI_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RAMI_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status rami_status_ = (expr);        \
    if (!rami_status_.ok()) return rami_status_; \
  } while (0)

// `lhs = value of expr` where expr is an absl::StatusOr<T>; returns its status on error.
#define RAMI_ASSIGN_OR_RETURN(lhs, expr) \
  RAMI_ASSIGN_OR_RETURN_IMPL_(RAMI_STATUS_CONCAT_(rami_statusor_, __LINE__), lhs, expr)
#define RAMI_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()
