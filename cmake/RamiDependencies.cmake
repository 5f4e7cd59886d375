# Third-party packages. The worker core needs only Abseil and nlohmann_json; gRPC, protobuf
# and Gloo are for the services; a CPU BLAS is optional (kernels fall back to loops).
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(Threads REQUIRED)

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
  find_package(GTest CONFIG REQUIRED)
endif()
