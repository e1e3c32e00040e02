# SPDX-License-Identifier: Apache-2.0
# central.cmake: the self-test of the demo Central (demo/, target naftikod-demo-central), the
# StackRox Central double every integration test talks to.
add_test(NAME central.selftest
  COMMAND ${NK_SOURCE_DIR}/tests/central/selftest.sh $<TARGET_FILE:naftikod-demo-central>)
set_tests_properties(central.selftest PROPERTIES TIMEOUT 180)
