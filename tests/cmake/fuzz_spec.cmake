# SPDX-License-Identifier: Apache-2.0
# Loader fuzzing: the corpus replayed as a ctest everywhere; the real libFuzzer target with
# -DNK_FUZZ=ON and clang (run: build/tests/fuzz_spec tests/fuzz/corpus/spec -max_total_time=60).
set(NK_FUZZ_SPEC_CORPUS ${NK_SOURCE_DIR}/tests/fuzz/corpus/spec)

add_executable(fuzz_spec_replay ${NK_SOURCE_DIR}/tests/fuzz/fuzz_spec.c
  ${NK_SOURCE_DIR}/tests/fuzz/replay_main.c)
target_link_libraries(fuzz_spec_replay PRIVATE naftikod_core)
add_test(NAME fuzz.spec.replay COMMAND fuzz_spec_replay ${NK_FUZZ_SPEC_CORPUS}
  ${NK_TEST_DATA}/spec/valid ${NK_TEST_DATA}/spec/invalid)
set_tests_properties(fuzz.spec.replay PROPERTIES TIMEOUT 300)

if(NK_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_spec ${NK_SOURCE_DIR}/tests/fuzz/fuzz_spec.c)
  target_link_libraries(fuzz_spec PRIVATE naftikod_core)
  target_compile_options(fuzz_spec PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_spec PRIVATE -fsanitize=fuzzer)
endif()

# Fail the N-th allocation of naftikod's own code while loading (malloc & co. wrapped at link).
add_executable(test_optable_oom ${NK_SOURCE_DIR}/tests/oom/test_optable_oom.c ${NK_SOURCE_DIR}/tests/support/oom.c)
target_include_directories(test_optable_oom PRIVATE ${NK_SOURCE_DIR}/tests/support)
target_link_libraries(test_optable_oom PRIVATE naftikod_core PkgConfig::CMOCKA)
target_link_options(test_optable_oom PRIVATE -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup)
target_compile_definitions(test_optable_oom PRIVATE NK_TEST_DATA="${NK_TEST_DATA}"
  NK_SOURCE_DIR="${NK_SOURCE_DIR}")
add_test(NAME unit.optable_oom COMMAND test_optable_oom)
set_tests_properties(unit.optable_oom PROPERTIES TIMEOUT 300 ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
