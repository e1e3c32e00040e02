# SPDX-License-Identifier: Apache-2.0
# rest_auth.cmake: inbound authentication, passthrough and --read-only (tests/integration/auth.sh);
# SIGHUP re-reading the --auth-tokens file (tests/integration/auth_reload.sh).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.auth
    COMMAND ${NK_SOURCE_DIR}/tests/integration/auth.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.auth PROPERTIES TIMEOUT 120)
  add_test(NAME integration.auth.reload
    COMMAND ${NK_SOURCE_DIR}/tests/integration/auth_reload.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.auth.reload PROPERTIES TIMEOUT 120)
endif()
