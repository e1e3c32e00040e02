# SPDX-License-Identifier: Apache-2.0
# bad_input.cmake: the bad-input battery (tests/integration/bad_input.sh) against the real daemon
# and the Central double; needs curl, jq, openssl and python3.
if(TARGET central-double)
  add_test(NAME integration.bad_input
    COMMAND ${NK_SOURCE_DIR}/tests/integration/bad_input.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:central-double> ${NK_SOURCE_DIR})
  set_tests_properties(integration.bad_input PROPERTIES TIMEOUT 180)
endif()
