// RAMI_CHECK: invariant checks (bookkeeping bugs, never bad input — bad input gets a Status).
// Debian's Abseil 20220623 predates absl/log, so rami carries this small macro.
#pragma once

#include <cstdio>
#include <cstdlib>

#define RAMI_CHECK(cond, ...)                                                            \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: RAMI_CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                 \
      std::fputc('\n', stderr);                                                          \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
