# rami_coordinator_api: the request front end — ServerLimits, ModelFrontEnd (model metadata,
# tokenizer, chat template: request input -> prompt ids) and GenerateRequest validation into a
# plain ValidatedRequest. Included from coordinator/CMakeLists.txt (after rami_tokenizer).
if(TARGET rami_proto)
  add_library(rami_coordinator_api STATIC
    ${CMAKE_CURRENT_LIST_DIR}/model_front_end.cc
    ${CMAKE_CURRENT_LIST_DIR}/request_validation.cc
    ${CMAKE_CURRENT_LIST_DIR}/server_limits.cc)
  target_compile_options(rami_coordinator_api PRIVATE ${RAMI_WARNINGS})
  target_link_libraries(rami_coordinator_api
    PUBLIC rami_tokenizer rami_proto rami_base absl::status absl::statusor absl::strings
           absl::time)
endif()
