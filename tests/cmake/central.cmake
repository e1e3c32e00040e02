# SPDX-License-Identifier: Apache-2.0
# central.cmake: the StackRox Central test double (also the bundled demo Central) and its self-test.
pkg_check_modules(NK_CENTRAL_MHD REQUIRED IMPORTED_TARGET libmicrohttpd)

add_executable(central-double ${NK_SOURCE_DIR}/tests/central/central_double.c)
target_link_libraries(central-double PRIVATE nk_flags PkgConfig::JANSSON PkgConfig::NK_CENTRAL_MHD
  Threads::Threads)
# build/tests/central-double: scripts/demo.sh and other tests expect it there.
set_target_properties(central-double PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

add_test(NAME central.selftest
  COMMAND ${NK_SOURCE_DIR}/tests/central/selftest.sh $<TARGET_FILE:central-double>)
set_tests_properties(central.selftest PROPERTIES TIMEOUT 180)
