# SPDX-License-Identifier: Apache-2.0
# `naftikod check` as a user runs it: exit status and output.
set(NK_SEED ${NK_SOURCE_DIR}/capabilities/stackrox-apitokenservice.yaml)
add_test(NAME check.seed COMMAND naftikod check ${NK_SEED})
set_tests_properties(check.seed PROPERTIES PASS_REGULAR_EXPRESSION
  "stackrox-apitokenservice.yaml:89:14: warning: the Authorization value '{{env.STACKROX_API_KEY}}' has no scheme")
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
