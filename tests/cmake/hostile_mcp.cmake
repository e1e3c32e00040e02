# SPDX-License-Identifier: Apache-2.0
# hostile_mcp.cmake: issue 17's MCP items (tests/integration/hostile_mcp.sh) against the real
# daemon and the Central double; needs curl, jq and python3.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.hostile.mcp
    COMMAND ${NK_SOURCE_DIR}/tests/integration/hostile_mcp.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.hostile.mcp PROPERTIES TIMEOUT 240)
endif()
