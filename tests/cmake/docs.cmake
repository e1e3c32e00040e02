# SPDX-License-Identifier: Apache-2.0
# docs.cmake: documentation that is checked against the code.
# docs/configuration.md's option table == `naftikod serve --options-markdown` (the option table).
add_test(NAME docs.options
  COMMAND ${NK_SOURCE_DIR}/tests/integration/docs_options.sh $<TARGET_FILE:naftikod>
          ${NK_SOURCE_DIR})
set_tests_properties(docs.options PROPERTIES TIMEOUT 30)
