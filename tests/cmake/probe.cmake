# SPDX-License-Identifier: Apache-2.0
# probe.cmake: `naftikod probe`, the container image's HEALTHCHECK (tests/integration/probe.sh).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.probe
    COMMAND ${NK_SOURCE_DIR}/tests/integration/probe.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.probe PROPERTIES TIMEOUT 60)
endif()
