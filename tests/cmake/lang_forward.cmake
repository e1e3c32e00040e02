# SPDX-License-Identifier: Apache-2.0
# lang_forward.cmake: `forward` on a REST resource (issue 15 item 1) against the Central double,
# with a hostile battery (path traversal, untrusted headers, size limit)
# (tests/integration/lang_forward.sh); needs curl, jq.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.lang.forward
    COMMAND ${NK_SOURCE_DIR}/tests/integration/lang_forward.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.lang.forward PROPERTIES TIMEOUT 180)
endif()
