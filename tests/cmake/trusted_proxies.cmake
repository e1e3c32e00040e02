# SPDX-License-Identifier: Apache-2.0
# trusted_proxies.cmake: --trusted-proxies and the MCP method and tool in the access line
# (issue 19; needs curl).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.trusted_proxies
    COMMAND ${NK_SOURCE_DIR}/tests/integration/trusted_proxies.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.trusted_proxies PROPERTIES TIMEOUT 120)
endif()
