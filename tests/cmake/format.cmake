# SPDX-License-Identifier: Apache-2.0
# style.clang-format: every C source and header follows .clang-format (runs when clang-format is
# installed; scripts/deps.sh --test installs it).
find_program(NK_CLANG_FORMAT NAMES clang-format clang-format-14)
if(NK_CLANG_FORMAT)
  file(GLOB_RECURSE NK_FORMAT_FILES CONFIGURE_DEPENDS
    ${NK_SOURCE_DIR}/src/*.c ${NK_SOURCE_DIR}/src/*.h ${NK_SOURCE_DIR}/include/*.h
    ${NK_SOURCE_DIR}/tests/*.c ${NK_SOURCE_DIR}/tests/*.h)
  add_test(NAME style.clang-format
    COMMAND ${NK_CLANG_FORMAT} --dry-run --Werror ${NK_FORMAT_FILES})
endif()
