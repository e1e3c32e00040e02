# SPDX-License-Identifier: Apache-2.0
# `naftikod check` as a user runs it: exit status and output.
set(NK_SEED ${NK_SOURCE_DIR}/capabilities/stackrox-apitokenservice.yaml)
add_test(NAME check.seed COMMAND naftikod check ${NK_SEED})
# The seed's Authorization value is a template: check cannot resolve it and says nothing about
# its scheme (serve and mcp-stdio judge the resolved value).
set_tests_properties(check.seed PROPERTIES FAIL_REGULAR_EXPRESSION "has no scheme")
add_test(NAME check.exit_codes COMMAND sh -c "
  n=$<TARGET_FILE:naftikod>
  $n check ${NK_SEED} >/dev/null || exit 10
  $n check --strict ${NK_SEED} >/dev/null || exit 11
  $n check ${NK_TEST_DATA}/spec/invalid/port-zero.yaml >/dev/null; test $? -eq 1 || exit 12
  $n check ${NK_SEED} ${NK_TEST_DATA}/spec/invalid/port-zero.yaml >/dev/null; test $? -eq 1 || exit 13
  $n check 2>/dev/null; test $? -eq 2 || exit 14
  $n check --bogus ${NK_SEED} 2>/dev/null; test $? -eq 2 || exit 15
  $n check --help | grep -q 'Usage: naftikod check' || exit 16
  $n check /nonexistent/x.yaml >/dev/null; test $? -eq 1 || exit 17
  $n check ${NK_TEST_DATA}/spec/multi/consumer.yaml ${NK_TEST_DATA}/spec/multi/exposer.yaml || exit 18
  exit 0")
