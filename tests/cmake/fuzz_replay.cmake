# SPDX-License-Identifier: Apache-2.0
# fuzz_replay.cmake: the REST, template, MCP and permission-rule harnesses' corpora replayed as ctests in every
# build (so also under ASan + UBSan in CI), and the REST harness as a libFuzzer target with
# -DNK_FUZZ=ON and clang (run: build/tests/fuzz_rest tests/fuzz/corpus/rest -max_total_time=60).
# The spec and JSONPath corpora have their own replay tests (fuzz_spec.cmake, jsonpath.cmake).
foreach(h rest template mcp authz)
  add_executable(fuzz_${h}_replay ${NK_SOURCE_DIR}/tests/fuzz/fuzz_${h}.c
    ${NK_SOURCE_DIR}/tests/fuzz/replay_main.c)
  target_link_libraries(fuzz_${h}_replay PRIVATE naftikod_core)
  target_compile_definitions(fuzz_${h}_replay PRIVATE
    NK_SEED_CAPABILITY="${NK_SOURCE_DIR}/capabilities/stackrox-apitokenservice.yaml")
  add_test(NAME fuzz.${h}.replay COMMAND fuzz_${h}_replay ${NK_SOURCE_DIR}/tests/fuzz/corpus/${h})
  set_tests_properties(fuzz.${h}.replay PROPERTIES TIMEOUT 300)
endforeach()

if(NK_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_authz ${NK_SOURCE_DIR}/tests/fuzz/fuzz_authz.c)
  target_link_libraries(fuzz_authz PRIVATE naftikod_core)
  target_compile_definitions(fuzz_authz PRIVATE
    NK_SEED_CAPABILITY="${NK_SOURCE_DIR}/capabilities/stackrox-apitokenservice.yaml")
  target_compile_options(fuzz_authz PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_authz PRIVATE -fsanitize=fuzzer)
  add_executable(fuzz_rest ${NK_SOURCE_DIR}/tests/fuzz/fuzz_rest.c)
  target_link_libraries(fuzz_rest PRIVATE naftikod_core)
  target_compile_definitions(fuzz_rest PRIVATE
    NK_SEED_CAPABILITY="${NK_SOURCE_DIR}/capabilities/stackrox-apitokenservice.yaml")
  target_compile_options(fuzz_rest PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_rest PRIVATE -fsanitize=fuzzer)
endif()
