# SPDX-License-Identifier: Apache-2.0
# deploy.cmake: Kubernetes manifests under deploy/ (tests/integration/deploy.sh).
add_test(NAME packaging.deploy
  COMMAND ${NK_SOURCE_DIR}/tests/integration/deploy.sh $<TARGET_FILE:naftikod> ${NK_SOURCE_DIR})
set_tests_properties(packaging.deploy PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77)
