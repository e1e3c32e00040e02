# SPDX-License-Identifier: Apache-2.0
# hostile.cmake: the hostile-client and hostile-upstream battery of issue 17 against the real
# daemon and the demo Central (tests/integration/hostile_<part>.sh; each needs curl, jq, openssl
# and python3), beside integration.bad_input:
#   http    raw sockets: the inbound check before the body, refused framing, many query
#           arguments, nosniff, JSON logs of libmicrohttpd's warnings, an empty Authorization
#           in passthrough mode
#   limits  descriptor exhaustion, ops-listener slowloris, MCP batches and the rate limit, rate
#           buckets that cannot be made to collide
#   mcp     cut UTF-8, duplicate keys, notifications/cancelled, the scheme warning, OAuth
#           discovery paths, sessions bound to the caller, JSON logs
#   rest    big answers passed through, DNS rebinding, 1xx/3xx upstream answers, dot segments,
#           upstream content types, HEAD, credentials with CR/LF
if(TARGET naftikod-demo-central)
  foreach(part http limits mcp rest)
    add_test(NAME integration.hostile.${part}
      COMMAND ${NK_SOURCE_DIR}/tests/integration/hostile_${part}.sh $<TARGET_FILE:naftikod>
              $<TARGET_FILE:naftikod-demo-central> ${NK_SOURCE_DIR})
    set_tests_properties(integration.hostile.${part} PROPERTIES TIMEOUT 300)
  endforeach()
endif()
