
# The token parser's fuzz harness: its corpus replayed in every build, and a libFuzzer target
# with -DNK_FUZZ=ON and clang (run: build/tests/fuzz_jose tests/fuzz/corpus/jose -max_total_time=60).
add_executable(fuzz_jose_replay ${NK_SOURCE_DIR}/tests/fuzz/fuzz_jose.c
  ${NK_SOURCE_DIR}/tests/fuzz/replay_main.c)
target_link_libraries(fuzz_jose_replay PRIVATE naftikod_core)
add_test(NAME fuzz.jose.replay COMMAND fuzz_jose_replay ${NK_SOURCE_DIR}/tests/fuzz/corpus/jose)
set_tests_properties(fuzz.jose.replay PROPERTIES TIMEOUT 300)
if(NK_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_jose ${NK_SOURCE_DIR}/tests/fuzz/fuzz_jose.c)
  target_link_libraries(fuzz_jose PRIVATE naftikod_core)
  target_compile_options(fuzz_jose PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_jose PRIVATE -fsanitize=fuzzer)
endif()

# The resource server end to end: the AS double (Python standard library and openssl), the
# Central double, the real daemon (tests/integration/oauth.sh).
if(TARGET naftikod-demo-central)
  add_test(NAME integration.oauth
    COMMAND ${NK_SOURCE_DIR}/tests/integration/oauth.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.oauth PROPERTIES TIMEOUT 300)
endif()

# The official TypeScript SDK as an OAuth client (ClientCredentialsProvider): skipped (77)
# without tests/mcp/install.sh's Node and SDK.
if(TARGET naftikod-demo-central)
  add_test(NAME mcp.sdk.oauth COMMAND ${NK_SOURCE_DIR}/tests/oauth/sdk_oauth_client.sh)
  set_tests_properties(mcp.sdk.oauth PROPERTIES
    ENVIRONMENT "${NK_MCP_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
