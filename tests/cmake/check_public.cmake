# SPDX-License-Identifier: Apache-2.0
# Public capability documents written by others: each passes `check` or fails with the recorded,
# reviewed diagnostics.
add_test(NAME check.public
  COMMAND ${NK_SOURCE_DIR}/tests/integration/check_public.sh $<TARGET_FILE:naftikod> ${NK_SOURCE_DIR})
set_tests_properties(check.public PROPERTIES TIMEOUT 120)
