# SPDX-License-Identifier: Apache-2.0
# mcp_list_changed.cmake: notifications/tools/list_changed on the handshake era's GET stream
# after a reload that changes the capability (issue 19 item 4; needs curl, jq).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.mcp.list_changed
    COMMAND ${NK_SOURCE_DIR}/tests/integration/mcp_list_changed.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.mcp.list_changed PROPERTIES TIMEOUT 120)
endif()
