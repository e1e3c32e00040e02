# SPDX-License-Identifier: Apache-2.0
# bad_input.cmake: the bad-input battery (tests/integration/bad_input.sh) against the real daemon
# and the Central double; needs curl, jq, openssl and python3.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.bad_input
    COMMAND ${NK_SOURCE_DIR}/tests/integration/bad_input.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.bad_input PROPERTIES TIMEOUT 180)
endif()

# Upstream faults (tests/integration/faults.sh); in a build without sanitizers the daemon runs
# under valgrind when it is installed (memory errors and definite leaks fail the test).
if(TARGET naftikod-demo-central)
  set(NK_FAULTS_VALGRIND "")
  if(NOT NK_SANITIZE)
    find_program(NK_VALGRIND valgrind)
    if(NK_VALGRIND)
      set(NK_FAULTS_VALGRIND ${NK_VALGRIND})
    endif()
  endif()
  add_test(NAME integration.faults
    COMMAND ${NK_SOURCE_DIR}/tests/integration/faults.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR} ${NK_FAULTS_VALGRIND})
  set_tests_properties(integration.faults PROPERTIES TIMEOUT 300)
endif()
