# SPDX-License-Identifier: Apache-2.0
# mcp_options.cmake: the MCP endpoint's settings from the option table (issue 13; needs curl,
# python3).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.mcp.options
    COMMAND ${NK_SOURCE_DIR}/tests/integration/mcp_options.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.mcp.options PROPERTIES TIMEOUT 120)
endif()
