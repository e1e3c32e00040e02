# SPDX-License-Identifier: Apache-2.0
# scale_out.cmake: three replicas behind nginx (issue 19; needs nginx, curl, jq, python3;
# skipped with a message without nginx: scripts/deps.sh --test installs nginx-light).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.scale_out
    COMMAND ${NK_SOURCE_DIR}/tests/integration/scale_out.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.scale_out PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()
