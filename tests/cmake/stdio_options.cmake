# SPDX-License-Identifier: Apache-2.0
# stdio_options.cmake: mcp-stdio reads the shared option table (config module).
add_test(NAME integration.stdio.options
  COMMAND ${NK_SOURCE_DIR}/tests/integration/stdio_options.sh $<TARGET_FILE:naftikod>
          ${NK_SOURCE_DIR}/capabilities/stackrox-apitokenservice.yaml)
set_tests_properties(integration.stdio.options PROPERTIES TIMEOUT 120)
