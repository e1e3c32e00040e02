# SPDX-License-Identifier: Apache-2.0
# ops.cmake: the ops listener of `naftikod serve` (/healthz, /readyz, /metrics) against the
# Central test double; /metrics is parsed by tests/integration/prom_check.py. Needs curl, jq,
# openssl and python3.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.ops
    COMMAND ${NK_SOURCE_DIR}/tests/integration/ops_e2e.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.ops PROPERTIES TIMEOUT 120)
endif()
