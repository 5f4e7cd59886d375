# Fallbacks for machines without Abseil, GoogleTest or nlohmann_json packages (the GPU machines:
# CUDA, CMake and ninja only, no network). The sources shipped in RAMI_GPU_DEPS_DIR
# (third_party/gpu-deps, made by deploy/make-gpu-deps.sh from the same Debian versions the rest
# of the tree uses) are unpacked into the build tree and built with the machine's own compiler,
# only as far as the targets being built need them (EXCLUDE_FROM_ALL). Each function defines the
# same targets the system package's CMake config would.
set(RAMI_GPU_DEPS_DIR "${PROJECT_SOURCE_DIR}/third_party/gpu-deps" CACHE PATH
    "Sources of Abseil/GoogleTest/nlohmann_json for machines without those packages")

# Unpacks <tarball> (relative to RAMI_GPU_DEPS_DIR) into <dest>, once per tarball content.
function(_rami_gpu_deps_unpack tarball dest)
  set(input "${RAMI_GPU_DEPS_DIR}/${tarball}")
  if(NOT EXISTS "${input}")
    message(FATAL_ERROR "rami: ${input} is missing; run deploy/make-gpu-deps.sh on a development "
                        "machine, or install the system package")
  endif()
  file(SHA256 "${input}" hash)
  set(stamp "${dest}/.rami-unpacked")
  if(EXISTS "${stamp}")
    file(READ "${stamp}" old)
    if(old STREQUAL hash)
      return()
    endif()
  endif()
  file(REMOVE_RECURSE "${dest}")
  file(ARCHIVE_EXTRACT INPUT "${input}" DESTINATION "${dest}")
  file(WRITE "${stamp}" "${hash}")
endfunction()

function(_rami_gpu_deps_tarball prefix out)
  file(GLOB found RELATIVE "${RAMI_GPU_DEPS_DIR}" "${RAMI_GPU_DEPS_DIR}/${prefix}-*.tar.xz")
  list(LENGTH found n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "rami: expected one ${prefix}-*.tar.xz in ${RAMI_GPU_DEPS_DIR}, found "
                        "'${found}'; run deploy/make-gpu-deps.sh")
  endif()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

# absl::* targets from the shipped Abseil source.
function(rami_gpu_deps_abseil)
  _rami_gpu_deps_tarball(abseil-cpp tarball)
  set(src "${CMAKE_BINARY_DIR}/_deps/gpu-deps-abseil")
  _rami_gpu_deps_unpack("${tarball}" "${src}")
  set(ABSL_PROPAGATE_CXX_STD ON)
  set(ABSL_ENABLE_INSTALL OFF)
  set(ABSL_BUILD_TESTING OFF)
  set(BUILD_TESTING OFF)  # this scope only: Abseil's tests are not shipped
  add_subdirectory("${src}/abseil-cpp" "${CMAKE_BINARY_DIR}/_deps/gpu-deps-abseil-build"
                   EXCLUDE_FROM_ALL SYSTEM)
  # Abseil 20220623 predates GCC 13, whose headers no longer pull <cstdint> in transitively;
  # a few Abseil headers rely on that. Forcing it in costs nothing on older compilers. Every
  # absl target links absl::config, so this reaches Abseil's sources and their users (C++ only:
  # .cu files include no Abseil).
  target_compile_options(absl_config INTERFACE
                         "$<$<COMPILE_LANGUAGE:CXX>:SHELL:-include cstdint>")
  message(STATUS "rami: Abseil from ${RAMI_GPU_DEPS_DIR}/${tarball}")
endfunction()

# GTest::gtest, GTest::gtest_main, GTest::gmock (GoogleTest's own CMake defines no aliases).
function(rami_gpu_deps_googletest)
  _rami_gpu_deps_tarball(googletest tarball)
  set(src "${CMAKE_BINARY_DIR}/_deps/gpu-deps-googletest")
  _rami_gpu_deps_unpack("${tarball}" "${src}")
  set(INSTALL_GTEST OFF)
  set(BUILD_GMOCK ON)
  add_subdirectory("${src}/googletest" "${CMAKE_BINARY_DIR}/_deps/gpu-deps-googletest-build"
                   EXCLUDE_FROM_ALL SYSTEM)
  foreach(lib gtest gtest_main gmock gmock_main)
    if(NOT TARGET GTest::${lib})
      add_library(GTest::${lib} ALIAS ${lib})
    endif()
  endforeach()
  message(STATUS "rami: GoogleTest from ${RAMI_GPU_DEPS_DIR}/${tarball}")
endfunction()

# nlohmann_json::nlohmann_json: header-only.
function(rami_gpu_deps_nlohmann_json)
  if(NOT EXISTS "${RAMI_GPU_DEPS_DIR}/include/nlohmann/json.hpp")
    message(FATAL_ERROR "rami: no nlohmann_json package and no ${RAMI_GPU_DEPS_DIR}/include/"
                        "nlohmann/json.hpp; run deploy/make-gpu-deps.sh")
  endif()
  add_library(rami_gpu_deps_nlohmann_json INTERFACE)
  target_include_directories(rami_gpu_deps_nlohmann_json SYSTEM INTERFACE
                             "${RAMI_GPU_DEPS_DIR}/include")
  add_library(nlohmann_json::nlohmann_json ALIAS rami_gpu_deps_nlohmann_json)
  message(STATUS "rami: nlohmann_json from ${RAMI_GPU_DEPS_DIR}/include")
endfunction()
