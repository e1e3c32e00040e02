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

# Fail the N-th allocation while compiling and applying permissions, and while loading adapter
# authentication (malloc & co. wrapped at link).
add_executable(test_authz_oom ${NK_SOURCE_DIR}/tests/oom/test_authz_oom.c ${NK_SOURCE_DIR}/tests/support/oom.c)
target_include_directories(test_authz_oom PRIVATE ${NK_SOURCE_DIR}/tests/support)
target_link_libraries(test_authz_oom PRIVATE naftikod_core PkgConfig::CMOCKA)
target_link_options(test_authz_oom PRIVATE -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup)
target_compile_definitions(test_authz_oom PRIVATE NK_TEST_DATA="${NK_TEST_DATA}")
add_test(NAME unit.authz_oom COMMAND test_authz_oom)
set_tests_properties(unit.authz_oom PROPERTIES TIMEOUT 300 ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
