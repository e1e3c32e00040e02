# SPDX-License-Identifier: Apache-2.0
# serve_ops.cmake: operational behaviour of `naftikod serve` against the Central test double
# (tests/integration/serve_ops.sh): SIGHUP reload under load, SIGTERM under load, the sd_notify
# sequence, the configuration file and secrets from files. Needs curl, jq, openssl and python3.
set(NK_SERVE_OPS_CASES reload sigterm notify config)
if(TARGET naftikod-demo-central)
  foreach(case ${NK_SERVE_OPS_CASES})
    add_test(NAME integration.serve.${case}
      COMMAND ${NK_SOURCE_DIR}/tests/integration/serve_ops.sh $<TARGET_FILE:naftikod>
              $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR} ${case})
    set_tests_properties(integration.serve.${case} PROPERTIES TIMEOUT 120)
  endforeach()
endif()
