# SPDX-License-Identifier: Apache-2.0
# The upstream and invoke unit tests talk to a recording HTTP server that runs inside the test.
foreach(t test_upstream test_invoke)
  if(TARGET ${t})
    target_sources(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support/fake_http.c)
    target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
  endif()
endforeach()
# The TLS case of test_upstream serves HTTPS with libmicrohttpd (allowed in tests).
if(TARGET test_upstream)
  target_link_libraries(test_upstream PRIVATE PkgConfig::MHD)
endif()

# test_invoke loads real capability documents: it needs the loader and JSONPath modules. On a
# branch that does not have them yet, it is not built and reported as disabled.
if(TARGET test_invoke AND NOT (EXISTS ${NK_SOURCE_DIR}/src/optable.c
                               AND EXISTS ${NK_SOURCE_DIR}/src/jsonpath.c))
  set_target_properties(test_invoke PROPERTIES EXCLUDE_FROM_ALL TRUE)
  set_tests_properties(unit.invoke PROPERTIES DISABLED TRUE)
endif()

# Allocation-failure loop over template, context, request building and output mapping.
if(EXISTS ${NK_SOURCE_DIR}/src/optable.c AND EXISTS ${NK_SOURCE_DIR}/src/jsonpath.c)
  add_executable(test_invoke_oom ${CMAKE_CURRENT_SOURCE_DIR}/oom/test_invoke_oom.c ${NK_SOURCE_DIR}/tests/support/oom.c)
  target_link_libraries(test_invoke_oom PRIVATE naftikod_core PkgConfig::CMOCKA)
  target_include_directories(test_invoke_oom PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
  target_link_options(test_invoke_oom PRIVATE
    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup)
  add_test(NAME unit.invoke_oom COMMAND test_invoke_oom)
  set_tests_properties(unit.invoke_oom PROPERTIES TIMEOUT 300
    ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
endif()

# libFuzzer harness for templates and percent-encoding (-DNK_FUZZ=ON with clang; run:
# build/tests/fuzz_template -max_total_time=60).
if(NK_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_template ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_template.c)
  target_link_libraries(fuzz_template PRIVATE naftikod_core)
  target_compile_options(fuzz_template PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_template PRIVATE -fsanitize=fuzzer)
endif()
