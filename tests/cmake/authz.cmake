# SPDX-License-Identifier: Apache-2.0
# authz.cmake: per-caller permissions, the three recipes of docs/examples/ and the audit trail
# (tests/integration/authz.sh); the document's inbound authentication (doc_auth.sh).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.authz
    COMMAND ${NK_SOURCE_DIR}/tests/integration/authz.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.authz PROPERTIES TIMEOUT 120)
endif()
if(TARGET naftikod-demo-central)
  add_test(NAME integration.doc_auth
    COMMAND ${NK_SOURCE_DIR}/tests/integration/doc_auth.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.doc_auth PROPERTIES TIMEOUT 120)
endif()
add_test(NAME integration.audit.journal
  COMMAND ${NK_SOURCE_DIR}/tests/integration/audit_journal.sh $<TARGET_FILE:naftikod>
          ${NK_SOURCE_DIR})
set_tests_properties(integration.audit.journal PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77)
