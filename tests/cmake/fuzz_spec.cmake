# SPDX-License-Identifier: Apache-2.0
# Loader fuzzing: the corpus replayed as a ctest everywhere; the real libFuzzer target with
# -DNK_FUZZ=ON and clang (run: build/tests/fuzz_spec tests/fuzz/corpus/spec -max_total_time=60).
set(NK_FUZZ_SPEC_CORPUS ${NK_SOURCE_DIR}/tests/fuzz/corpus/spec)

add_executable(fuzz_spec_replay ${NK_SOURCE_DIR}/tests/fuzz/fuzz_spec.c
  ${NK_SOURCE_DIR}/tests/fuzz/replay.c)
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
