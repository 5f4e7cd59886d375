# RAMI_FUZZ: the libFuzzer build (tests/fuzz/run.sh configures it in build-fuzz/ with clang;
# the main build stays GCC). Every source compiled in this configuration gets libFuzzer's
# coverage instrumentation and AddressSanitizer + UndefinedBehaviorSanitizer; only the fuzzers
# link libFuzzer's main (-fsanitize=fuzzer, tests/fuzz/CMakeLists.txt). Debian's Abseil,
# protobuf and gRPC stay the GCC-built shared libraries: same libstdc++ ABI, not instrumented.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "rami: RAMI_FUZZ needs clang (libFuzzer); configure with "
                      "CC=clang CXX=clang++ in a build folder of its own (tests/fuzz/run.sh)")
endif()
if(RAMI_WITH_GRPC STREQUAL "OFF")
  message(FATAL_ERROR "rami: RAMI_FUZZ needs RAMI_WITH_GRPC (the request fuzzers use rami_proto)")
endif()
set(RAMI_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                    -fno-omit-frame-pointer)
add_compile_options(${RAMI_FUZZ_FLAGS})
# -O1 and line tables only: about half the compile time of -O2 -g for the same stack traces.
# No NDEBUG: assert() (nlohmann's JSON_ASSERT included) stays on, as a fuzzer wants.
set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O1 -gline-tables-only")
set(CMAKE_C_FLAGS_RELWITHDEBINFO "-O1 -gline-tables-only")
add_link_options(-fsanitize=address,undefined)
