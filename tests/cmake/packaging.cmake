# SPDX-License-Identifier: Apache-2.0
# packaging.cmake: the systemd unit (verify, security <= 2.0), naftikod(8), the .deb.
foreach(case systemd man deb)
  add_test(NAME packaging.${case}
    COMMAND ${NK_SOURCE_DIR}/tests/integration/packaging.sh ${case} $<TARGET_FILE:naftikod>
            ${NK_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  set_tests_properties(packaging.${case} PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endforeach()
