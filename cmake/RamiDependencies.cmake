# Third-party packages. The worker core needs only Abseil and nlohmann_json; gRPC, protobuf
# and Gloo are for the services; a CPU BLAS is optional (kernels fall back to loops).
# Where Abseil, nlohmann_json or GoogleTest have no package (GPU machines), their sources
# shipped in third_party/gpu-deps are built instead (cmake/RamiGpuDeps.cmake) — for
# RAMI_WITH_GRPC=OFF only, since gRPC must use the Abseil it was built against.
include(RamiGpuDeps)
find_package(Threads REQUIRED)
find_package(absl CONFIG QUIET)
if(NOT absl_FOUND)
  if(RAMI_WITH_GRPC)
    message(FATAL_ERROR "rami: Abseil not found (install libabsl-dev), or configure with "
                        "-DRAMI_WITH_GRPC=OFF to build the shipped third_party/gpu-deps copy")
  endif()
  rami_gpu_deps_abseil()
endif()
find_package(nlohmann_json CONFIG QUIET)
if(NOT nlohmann_json_FOUND)
  rami_gpu_deps_nlohmann_json()
endif()

find_package(BLAS)
set(RAMI_HAVE_CBLAS OFF)
if(BLAS_FOUND)
  include(CheckIncludeFileCXX)
  find_path(RAMI_CBLAS_INCLUDE cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-pthread
            /usr/include/openblas /usr/include)
  if(RAMI_CBLAS_INCLUDE)
    set(RAMI_HAVE_CBLAS ON)
    message(STATUS "rami: CPU BLAS ${BLAS_LIBRARIES} (cblas.h in ${RAMI_CBLAS_INCLUDE})")
  endif()
endif()

if(RAMI_WITH_GRPC)
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  find_package(Gloo CONFIG)
endif()

if(BUILD_TESTING OR NOT DEFINED BUILD_TESTING)
  find_package(GTest CONFIG QUIET)
  if(NOT GTest_FOUND)
    rami_gpu_deps_googletest()
  endif()
endif()
