# SPDX-License-Identifier: Apache-2.0
# lang_simple.cmake: the simple forms of the capability language (mocks, templated and typed
# outputs, non-singular mappings, consumed outputParameters, body variables; issue 15 items 4
# and 6) served against the Central double (tests/integration/lang_simple.sh); needs curl, jq.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.lang.simple
    COMMAND ${NK_SOURCE_DIR}/tests/integration/lang_simple.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.lang.simple PROPERTIES TIMEOUT 180)
endif()
