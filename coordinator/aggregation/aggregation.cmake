# rami_aggregation: answer extraction, DeepConf confidence, vote aggregation and early pruning
# for best-of-N jobs. Pure logic (Abseil + PCRE2; no gRPC, no protobuf, no device).
# Included from coordinator/CMakeLists.txt after its PCRE2 lookup, so it reuses the
# PkgConfig::RAMI_PCRE2 target; the fallback lookup lets it be included on its own.
if(NOT TARGET PkgConfig::RAMI_PCRE2)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(RAMI_PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
endif()

add_library(rami_aggregation STATIC
  ${CMAKE_CURRENT_LIST_DIR}/aggregator.cc
  ${CMAKE_CURRENT_LIST_DIR}/answer_extractor.cc
  ${CMAKE_CURRENT_LIST_DIR}/confidence.cc
  ${CMAKE_CURRENT_LIST_DIR}/early_pruning.cc
)
target_compile_options(rami_aggregation PRIVATE ${RAMI_WARNINGS})
target_link_libraries(rami_aggregation
  PUBLIC rami_base absl::status absl::statusor absl::strings
  PRIVATE absl::flat_hash_map PkgConfig::RAMI_PCRE2)
