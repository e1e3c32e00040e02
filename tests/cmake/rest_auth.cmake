# SPDX-License-Identifier: Apache-2.0
# rest_auth.cmake: inbound authentication, passthrough and --read-only (tests/integration/auth.sh).
if(TARGET central-double)
  add_test(NAME integration.auth
    COMMAND ${NK_SOURCE_DIR}/tests/integration/auth.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:central-double> ${NK_SOURCE_DIR})
  set_tests_properties(integration.auth PROPERTIES TIMEOUT 120)
endif()
