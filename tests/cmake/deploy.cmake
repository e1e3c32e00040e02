# SPDX-License-Identifier: Apache-2.0
# deploy.cmake: Kubernetes manifests under deploy/ (tests/integration/deploy.sh): every overlay
# rendered and schema-checked, and the kubernetes overlay's pod run as uid 10001 against the
# demo Central.
if(TARGET naftikod-demo-central)
  add_test(NAME packaging.deploy
    COMMAND ${NK_SOURCE_DIR}/tests/integration/deploy.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(packaging.deploy PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
