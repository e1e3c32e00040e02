# SPDX-License-Identifier: Apache-2.0
# family.cmake: many capability documents in one daemon (shared listeners, merged binds and
# consumers, capability directories, reload of a directory), against the Central double.
if(TARGET naftikod-demo-central)
  foreach(case conflicts serve40 reload)
    add_test(NAME integration.family.${case}
      COMMAND ${NK_SOURCE_DIR}/tests/integration/family.sh $<TARGET_FILE:naftikod>
              $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR} ${case})
    set_tests_properties(integration.family.${case} PROPERTIES TIMEOUT 180)
  endforeach()
endif()
