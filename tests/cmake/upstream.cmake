# SPDX-License-Identifier: Apache-2.0
# The upstream and invoke unit tests talk to a recording HTTP server that runs inside the test.
foreach(t test_upstream test_invoke)
  if(TARGET ${t})
    target_sources(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support/fake_http.c)
    target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
  endif()
endforeach()
