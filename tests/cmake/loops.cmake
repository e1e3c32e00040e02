# SPDX-License-Identifier: Apache-2.0
# loops.cmake: `naftikod serve --loops 2` (issue 13): both loops serve one port, an MCP session
# across loops (tests/integration/loops.sh); reload and SIGTERM under load with 2 loops
# (serve_ops.sh with NK_SERVE_LOOPS=2). Needs curl, jq, openssl and python3.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.loops
    COMMAND ${NK_SOURCE_DIR}/tests/integration/loops.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.loops PROPERTIES TIMEOUT 120)
  foreach(case reload sigterm)
    add_test(NAME integration.loops.${case}
      COMMAND ${NK_SOURCE_DIR}/tests/integration/serve_ops.sh $<TARGET_FILE:naftikod>
              $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR} ${case})
    set_tests_properties(integration.loops.${case} PROPERTIES TIMEOUT 120
      ENVIRONMENT NK_SERVE_LOOPS=2)
  endforeach()
endif()
