# SPDX-License-Identifier: Apache-2.0
# lang_ikanos.cmake: aggregates with `ref` and the `ikanos:` root (issue 15 items 3 and 5) served
# against the Central double (tests/integration/lang_ikanos.sh); needs curl, jq.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.lang.ikanos
    COMMAND ${NK_SOURCE_DIR}/tests/integration/lang_ikanos.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.lang.ikanos PROPERTIES TIMEOUT 180)
endif()
