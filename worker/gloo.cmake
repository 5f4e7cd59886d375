# rami_worker_gloo: the CPU collectives over Gloo's TCP transport (gloo_collectives.cc) and the
# rendezvous store interface. Included from worker/CMakeLists.txt when gRPC is on; skipped,
# with a note, on machines without libgloo-dev.
if(NOT TARGET gloo)
  message(STATUS "Gloo not found: rami_worker_gloo (CPU collectives) is not built")
  return()
endif()

add_library(rami_worker_gloo STATIC gloo_collectives.cc)
target_compile_options(rami_worker_gloo PRIVATE ${RAMI_WARNINGS})
target_link_libraries(rami_worker_gloo
  PUBLIC rami_worker_core absl::status absl::statusor absl::time absl::synchronization
         absl::strings absl::function_ref
  PRIVATE gloo Threads::Threads)
