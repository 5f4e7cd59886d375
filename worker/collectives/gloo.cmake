# rami_collectives_gloo: the CPU collectives over Gloo's TCP transport (gloo_collectives.cc).
# Skipped, with a note, on machines without libgloo-dev.
if(NOT TARGET gloo)
  message(STATUS "Gloo not found: rami_collectives_gloo (CPU collectives) is not built")
  return()
endif()

add_library(rami_collectives_gloo STATIC gloo_collectives.cc)
target_compile_options(rami_collectives_gloo PRIVATE ${RAMI_WARNINGS})
target_link_libraries(rami_collectives_gloo
  PUBLIC rami_collectives
  PRIVATE gloo Threads::Threads)
