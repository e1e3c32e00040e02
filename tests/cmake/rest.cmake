# SPDX-License-Identifier: Apache-2.0
# rest.cmake: end-to-end tests of `naftikod serve` (REST adapter) against the Central test double.
# They need the double (tests/cmake/central.cmake, included before this file) and curl, jq and
# openssl on the machine.
set(NK_REST_CASES crud encoding validation routing passthrough unreachable timeout openapi
  signals async)
if(TARGET naftikod-demo-central)
  foreach(case ${NK_REST_CASES})
    add_test(NAME integration.rest.${case}
      COMMAND ${NK_SOURCE_DIR}/tests/integration/rest_e2e.sh $<TARGET_FILE:naftikod>
              $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR} ${case})
    set_tests_properties(integration.rest.${case} PROPERTIES TIMEOUT 120)
  endforeach()
  # Runs when spectral is installed (scripts/deps.sh --test puts it under build/npm); skipped
  # otherwise, unless NK_REQUIRE_SPECTRAL is set in the environment, which makes that a failure.
  add_test(NAME rest.openapi.spectral
    COMMAND ${NK_SOURCE_DIR}/tests/integration/rest_e2e.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR} spectral)
  set_tests_properties(rest.openapi.spectral PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()

# --rest-listen / --mcp-listen and their environment variables.
add_test(NAME integration.rest.listen
  COMMAND ${NK_SOURCE_DIR}/tests/integration/listen.sh $<TARGET_FILE:naftikod> ${NK_SOURCE_DIR})
set_tests_properties(integration.rest.listen PROPERTIES TIMEOUT 60)
