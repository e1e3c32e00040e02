# SPDX-License-Identifier: Apache-2.0
# JSONPath: the RFC 9535 compliance suite (in-repo copy, BSD-2) and the fuzz harness replay.
add_executable(jsonpath_cts_runner ${CMAKE_CURRENT_SOURCE_DIR}/jsonpath/cts_runner.c)
target_link_libraries(jsonpath_cts_runner PRIVATE naftikod_core)
add_test(NAME jsonpath.cts
  COMMAND jsonpath_cts_runner ${NK_TEST_DATA}/jsonpath-cts/cts.json)
set_tests_properties(jsonpath.cts PROPERTIES TIMEOUT 300)

if(NK_FUZZ)
  add_executable(fuzz_jsonpath ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_jsonpath.c)
  target_link_libraries(fuzz_jsonpath PRIVATE naftikod_core)
  target_link_options(fuzz_jsonpath PRIVATE -fsanitize=fuzzer)
  add_test(NAME fuzz.jsonpath.replay
    COMMAND fuzz_jsonpath -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/jsonpath)
else()
  add_executable(fuzz_jsonpath_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_jsonpath.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay_main.c)
  target_link_libraries(fuzz_jsonpath_replay PRIVATE naftikod_core)
  add_test(NAME fuzz.jsonpath.replay
    COMMAND fuzz_jsonpath_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/jsonpath)
endif()
set_tests_properties(fuzz.jsonpath.replay PROPERTIES TIMEOUT 300)

# Every allocation of compile and query fails in turn (the wrapped allocator lives in the test).
add_executable(jsonpath_oom ${CMAKE_CURRENT_SOURCE_DIR}/jsonpath/oom_test.c ${NK_SOURCE_DIR}/tests/support/oom.c)
target_include_directories(jsonpath_oom PRIVATE ${NK_SOURCE_DIR}/tests/support)
target_link_libraries(jsonpath_oom PRIVATE naftikod_core)
target_link_options(jsonpath_oom PRIVATE
  -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup)
add_test(NAME jsonpath.oom COMMAND jsonpath_oom)
set_tests_properties(jsonpath.oom PROPERTIES TIMEOUT 300)
