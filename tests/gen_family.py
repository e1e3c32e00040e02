#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""gen_family.py: write N synthetic capability documents in the shape of the bundled
capabilities/stackrox-apitokenservice.yaml, one per StackRox Central service: the same bind
(env.STACKROX_API_KEY), the same REST port 8080 and MCP port 9090, a consumes namespace and
resource paths of its own.

    gen_family.py --count N --out DIR [--ops K]

Document i (0-based) is DIR/stackrox-SERVICE.yaml. Its consumer stackrox-SERVICE reads
GET /v1/RES (operation `list`) and, with --ops K > 1, GET /v1/RES/opJ for J in 1..K-1.
The REST adapter serves them at /v1/v1/RES[/opJ]; the MCP adapter names the tools
list-RES[-opJ]. The first services are real Central ones the demo Central answers
(ping, alerts, deployments, images, policies); the others 404 there (the double's answer).
"""
import argparse
import os

REAL = [
    ("pingservice", "ping"),
    ("alertservice", "alerts"),
    ("deploymentservice", "deployments"),
    ("imageservice", "images"),
    ("policyservice", "policies"),
    ("clusterservice", "clusters"),
    ("namespaceservice", "namespaces"),
    ("nodeservice", "nodes"),
    ("secretservice", "secrets"),
    ("notifierservice", "notifiers"),
    ("roleservice", "roles"),
    ("groupservice", "groups"),
    ("searchservice", "search"),
    ("networkpolicyservice", "networkpolicies"),
    ("complianceservice", "compliance"),
    ("integrationhealthservice", "integrationhealth"),
    ("imageintegrationservice", "imageintegrations"),
    ("vulnmgmtservice", "vulnmgmt"),
    ("processservice", "processes"),
    ("reportservice", "reports"),
]


def service(i):
    if i < len(REAL):
        return REAL[i]
    return ("svc%04dservice" % i, "svc%04d" % i)


def document(i, n_ops):
    svc, res = service(i)
    ns = "stackrox-" + svc
    ops = [("list", "/v1/" + res, "list-" + res)]
    for j in range(1, n_ops):
        ops.append(("op%d" % j, "/v1/%s/op%d" % (res, j), "list-%s-op%d" % (res, j)))
    out = []
    w = out.append
    w("naftiko: 1.0.0-alpha2")
    w("info:")
    w("  label: API Reference — %s" % svc)
    w("  description: Synthetic capability %d of the family (%s)." % (i, svc))
    w("binds:")
    w("- namespace: env")
    w("  keys:")
    w("    STACKROX_API_KEY: STACKROX_API_KEY")
    w("capability:")
    w("  consumes:")
    w("  - type: http")
    w("    namespace: %s" % ns)
    w("    baseUri: https://{central-host}")
    w("    description: %s business capability." % svc)
    w("    resources:")
    for name, path, _ in ops:
        w("    - name: %s" % name)
        w("      path: %s" % path)
        w("      operations:")
        w("      - name: %s" % name)
        w("        method: GET")
        w("        description: %s %s." % (svc, name))
        w("        outputRawFormat: json")
        w("        outputParameters:")
        w("        - name: result")
        w("          type: object")
        w("          value: $.")
    w("    authentication:")
    w("      type: apikey")
    w("      key: Authorization")
    w("      value: '{{env.STACKROX_API_KEY}}'")
    w("      placement: header")
    w("  exposes:")
    w("  - type: rest")
    w("    namespace: %s-rest" % ns)
    w("    port: 8080")
    w("    description: REST adapter for %s." % svc)
    w("    resources:")
    for name, path, _ in ops:
        w("    - path: /v1%s" % path)
        w("      name: %s" % name)
        w("      description: REST surface for %s." % name)
        w("      operations:")
        w("      - method: GET")
        w("        name: %s" % name)
        w("        description: %s %s." % (svc, name))
        w("        call: %s.%s" % (ns, name))
        w("        outputParameters:")
        w("        - type: object")
        w("          mapping: $.")
    w("  - type: mcp")
    w("    namespace: %s-mcp" % ns)
    w("    port: 9090")
    w("    transport: http")
    w("    description: MCP adapter for %s." % svc)
    w("    tools:")
    for name, _, tool in ops:
        w("    - name: %s" % tool)
        w("      description: %s %s." % (svc, name))
        w("      hints:")
        w("        readOnly: true")
        w("      call: %s.%s" % (ns, name))
        w("      outputParameters:")
        w("      - type: object")
        w("        mapping: $.")
    return "stackrox-%s.yaml" % svc, "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ops", type=int, default=1, help="operations per document (default 1)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.count):
        name, text = document(i, max(1, a.ops))
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
