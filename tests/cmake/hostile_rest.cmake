# SPDX-License-Identifier: Apache-2.0
# hostile_rest.cmake: a hostile caller and a hostile upstream against the REST adapter
# (tests/integration/hostile_rest.sh, issue 17) with the Central double; needs curl, jq, openssl.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.hostile.rest
    COMMAND ${NK_SOURCE_DIR}/tests/integration/hostile_rest.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.hostile.rest PROPERTIES TIMEOUT 180)
endif()
