# SPDX-License-Identifier: Apache-2.0
# The upstream and invoke unit tests talk to a recording HTTP server that runs inside the test.
foreach(t test_upstream test_invoke)
  if(TARGET ${t})
    target_sources(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support/fake_http.c)
    target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
  endif()
endforeach()

# test_invoke loads real capability documents: it needs the loader and JSONPath modules. On a
# branch that does not have them yet, it is not built and reported as disabled.
if(TARGET test_invoke AND NOT (EXISTS ${NK_SOURCE_DIR}/src/optable.c
                               AND EXISTS ${NK_SOURCE_DIR}/src/jsonpath.c))
  set_target_properties(test_invoke PROPERTIES EXCLUDE_FROM_ALL TRUE)
  set_tests_properties(unit.invoke PROPERTIES DISABLED TRUE)
endif()
