#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate a naftiko 1.0.0-alpha2 capability with N operations (consumes + REST + MCP),
shaped like the StackRox generator's documents, for load benchmarks and tests.

usage: tools/gen_capability.py N [OUT]   (OUT defaults to stdout)
"""
import sys


def main(argv):
    if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
        sys.stderr.write(__doc__)
        return 2
    n = int(argv[1])
    out = open(argv[2], "w", encoding="utf-8") if len(argv) > 2 else sys.stdout
    w = out.write
    w("naftiko: 1.0.0-alpha2\n")
    w("info:\n  label: Generated capability\n")
    w("  description: %d generated operations for load benchmarks.\n" % n)
    w("binds:\n- namespace: env\n  keys:\n    API_KEY: API_KEY\n")
    w("capability:\n  consumes:\n  - type: http\n    namespace: gen\n")
    w("    baseUri: https://{host}\n    description: Generated upstream.\n")
    w("    authentication:\n      type: bearer\n      token: '{{env.API_KEY}}'\n")
    w("    resources:\n")
    methods = ["GET", "POST", "PATCH", "DELETE"]
    for i in range(n):
        m = methods[i % 4]
        w("    - name: r%d\n      path: /v1/things%d/{id}\n      operations:\n" % (i, i))
        w("      - name: op%d\n        method: %s\n" % (i, m))
        w("        description: Operation %d.\n        outputRawFormat: json\n" % i)
        w("        outputParameters:\n        - name: result\n          type: object\n")
        w("          value: $.\n")
        w("        inputParameters:\n        - name: id\n          in: path\n")
        w("          type: string\n          required: true\n")
        w("        - name: flag\n          in: query\n          type: boolean\n")
        if m in ("POST", "PATCH"):
            w("        - name: body\n          in: body\n          type: object\n")
            w("          required: true\n")
    w("  exposes:\n  - type: rest\n    namespace: gen-rest\n    port: 8080\n    resources:\n")
    for i in range(n):
        m = methods[i % 4]
        w("    - path: /v1/v1/things%d/{id}\n      name: r%d\n      operations:\n" % (i, i))
        w("      - method: %s\n        name: op%d\n        call: gen.op%d\n" % (m, i, i))
        w("        with:\n          id: rest.id\n          flag: rest.flag\n")
        if m in ("POST", "PATCH"):
            w("          body: rest.body\n")
        w("        outputParameters:\n        - type: object\n          mapping: $.\n")
    w("  - type: mcp\n    namespace: gen-mcp\n    port: 9090\n    tools:\n")
    for i in range(n):
        m = methods[i % 4]
        w("    - name: op%d-tool\n      description: Tool %d.\n" % (i, i))
        w("      hints:\n        readOnly: %s\n" % ("true" if m == "GET" else "false"))
        w("      call: gen.op%d\n      with:\n        id: tools.id\n        flag: tools.flag\n"
          % i)
        if m in ("POST", "PATCH"):
            w("        body: tools.body\n")
        w("      outputParameters:\n      - type: object\n        mapping: $.\n")
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
