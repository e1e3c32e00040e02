# SPDX-License-Identifier: Apache-2.0
# hostile_http.cmake: hostile HTTP over raw sockets (tests/integration/hostile_http.sh): the
# inbound check before the body, refused framing, many query arguments, nosniff, JSON logs of
# libmicrohttpd's warnings, an empty Authorization in passthrough mode; needs curl, jq, openssl
# and python3.
if(TARGET naftikod-demo-central)
  add_test(NAME integration.hostile.http
    COMMAND ${NK_SOURCE_DIR}/tests/integration/hostile_http.sh $<TARGET_FILE:naftikod>
            $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
  set_tests_properties(integration.hostile.http PROPERTIES TIMEOUT 180)
endif()
