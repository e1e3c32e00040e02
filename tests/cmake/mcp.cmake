# SPDX-License-Identifier: Apache-2.0
# MCP protocol tests beyond the unit test: the official conformance suite, the official
# TypeScript SDK client and the official MCP Inspector (CLI), driven by tests/mcp/*.sh. They
# need Node 22 and the pinned npm packages of tests/mcp/package.json under
# ${NK_MCP_NPM_PREFIX}; install them with
#   tests/mcp/install.sh            (npm install into build/mcp-npm)
# Without them the tests report "skipped" (exit 77).
set(NK_MCP_NPM_PREFIX "${NK_SOURCE_DIR}/build/mcp-npm" CACHE PATH
    "Where tests/mcp/install.sh put Node 22 and the MCP npm packages")

# A test-only HTTP server around the engine with fake tools (protocol layer only).
add_executable(mcp_engine_server ${NK_SOURCE_DIR}/tests/mcp/engine_server.c)
target_link_libraries(mcp_engine_server PRIVATE naftikod_core PkgConfig::MHD)

set(NK_MCP_ENV "NK_MCP_NPM_PREFIX=${NK_MCP_NPM_PREFIX}"
    "NK_MCP_ENGINE_SERVER=$<TARGET_FILE:mcp_engine_server>"
    "NK_NAFTIKOD=$<TARGET_FILE:naftikod>"
    "NK_SOURCE_DIR=${NK_SOURCE_DIR}")
if(TARGET naftikod-demo-central)
  list(APPEND NK_MCP_ENV "NK_CENTRAL_DOUBLE=$<TARGET_FILE:naftikod-demo-central>")
endif()

foreach(v 2025-06-18 2025-11-25 2026-07-28)
  add_test(NAME mcp.conformance.engine.${v}
           COMMAND ${NK_SOURCE_DIR}/tests/mcp/conformance.sh --engine ${v})
  add_test(NAME mcp.conformance.${v} COMMAND ${NK_SOURCE_DIR}/tests/mcp/conformance.sh ${v})
  set_tests_properties(mcp.conformance.engine.${v} mcp.conformance.${v} PROPERTIES
    ENVIRONMENT "${NK_MCP_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 600 RUN_SERIAL TRUE)
endforeach()
foreach(t http stdio)
  add_test(NAME mcp.sdk.${t} COMMAND ${NK_SOURCE_DIR}/tests/mcp/sdk_client.sh ${t})
  set_tests_properties(mcp.sdk.${t} PROPERTIES
    ENVIRONMENT "${NK_MCP_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()
# notifications/tools/list_changed on the SDK client's GET stream after a reload (issue 19)
add_test(NAME mcp.sdk.list_changed COMMAND ${NK_SOURCE_DIR}/tests/mcp/sdk_list_changed.sh)
set_tests_properties(mcp.sdk.list_changed PROPERTIES
  ENVIRONMENT "${NK_MCP_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 300)

# The official MCP Inspector's CLI mode against the daemon, as an operator would use it
add_test(NAME mcp.inspector.cli COMMAND ${NK_SOURCE_DIR}/tests/mcp/inspector_cli.sh)
set_tests_properties(mcp.inspector.cli PROPERTIES
  ENVIRONMENT "${NK_MCP_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 300)

# libFuzzer harness for the engine (clang, -DNK_FUZZ=ON): build/tests/fuzz_mcp -max_total_time=60
if(NK_FUZZ)
  add_executable(fuzz_mcp ${NK_SOURCE_DIR}/tests/fuzz/fuzz_mcp.c)
  target_link_libraries(fuzz_mcp PRIVATE naftikod_core)
  target_link_options(fuzz_mcp PRIVATE -fsanitize=fuzzer)
endif()

# The engine over the shipped capability's real table: needs the loader (optable, template,
# jsonpath), so it is built once those sources are in the tree.
if(EXISTS ${NK_SOURCE_DIR}/src/optable_load.c AND EXISTS ${NK_SOURCE_DIR}/src/jsonpath.c
   AND EXISTS ${NK_SOURCE_DIR}/src/template.c)
  add_executable(test_mcp_seed ${NK_SOURCE_DIR}/tests/mcp/test_mcp_seed.c)
  target_link_libraries(test_mcp_seed PRIVATE naftikod_core PkgConfig::CMOCKA)
  target_compile_definitions(test_mcp_seed PRIVATE NK_SOURCE_DIR="${NK_SOURCE_DIR}")
  add_test(NAME unit.mcp_seed COMMAND test_mcp_seed)
  set_tests_properties(unit.mcp_seed PROPERTIES ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
endif()
