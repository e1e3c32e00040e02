# SPDX-License-Identifier: Apache-2.0
# hostile_limits.cmake: resource limits against hostile clients (tests/integration/
# hostile_limits.sh: descriptor exhaustion, ops slowloris, MCP batches and the rate limit, rate
# buckets) against the real daemon and the Central double; needs curl, jq, openssl and python3.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.hostile.limits
    COMMAND ${NK_SOURCE_DIR}/tests/integration/hostile_limits.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.hostile.limits PROPERTIES TIMEOUT 300)
endif()
