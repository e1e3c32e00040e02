# SPDX-License-Identifier: Apache-2.0
# upstream_waiting.cmake: the upstream client's waiting room seen from outside (issue 13; needs
# curl and python3).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.upstream_waiting
    COMMAND ${NK_SOURCE_DIR}/tests/integration/upstream_waiting.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.upstream_waiting PROPERTIES TIMEOUT 120)
endif()
