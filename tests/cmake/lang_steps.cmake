# SPDX-License-Identifier: Apache-2.0
# lang_steps.cmake: orchestrated operations (steps: call and lookup, mappings, orchestrated
# outputParameters; issue 15 item 2) served against the Central double
# (tests/integration/lang_steps.sh); needs curl, jq.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.lang.steps
    COMMAND ${NK_SOURCE_DIR}/tests/integration/lang_steps.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.lang.steps PROPERTIES TIMEOUT 180)
endif()
