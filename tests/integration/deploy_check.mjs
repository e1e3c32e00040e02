// SPDX-License-Identifier: Apache-2.0
// deploy_check.mjs DEPLOY_DIR OUT_CONFIG: parse every manifest under deploy/ (the npm `yaml`
// package), check the shape the docs promise, and write the ConfigMap's naftikod.yaml to
// OUT_CONFIG so the daemon itself can load it.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

const [dir, out] = process.argv.slice(2);
const docs = {};
for (const f of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
  for (const d of parseAllDocuments(readFileSync(join(dir, f), "utf8"))) {
    if (d.errors.length) throw new Error(`${f}: ${d.errors[0].message}`);
    const o = d.toJS();
    if (o && o.kind) docs[o.kind] = o;
  }
}
const need = (cond, what) => { if (!cond) { console.error(`FAIL: ${what}`); process.exit(1); } };
for (const k of ["Deployment", "Service", "NetworkPolicy", "ConfigMap", "Secret", "Kustomization"])
  need(docs[k], `no ${k} manifest`);
const dep = docs.Deployment.spec, c = dep.template.spec.containers[0];
need(dep.replicas === 2, "Deployment replicas != 2");
need(c.readinessProbe.httpGet.path === "/readyz", "readiness probe is not /readyz");
need(c.livenessProbe.httpGet.path === "/healthz", "liveness probe is not /healthz");
need(c.securityContext.readOnlyRootFilesystem === true, "root file system not read-only");
need(c.securityContext.capabilities.drop.includes("ALL"), "capabilities not dropped");
need(dep.template.spec.securityContext.runAsNonRoot === true, "runAsNonRoot not set");
need(c.env.some((e) => e.name === "STACKROX_API_KEY_FILE"), "the key does not come from a file");
need(c.env.some((e) => e.name === "NAFTIKOD_MCP_ALLOWED_HOSTS"), "no MCP allowed hosts: agents reaching the Service get 403");
need(docs.NetworkPolicy.spec.policyTypes.includes("Egress"), "no egress policy");
writeFileSync(out, docs.ConfigMap.data["naftikod.yaml"]);
console.log(`ok: ${Object.keys(docs).length} kinds parsed; Deployment 2 replicas, probes /readyz and /healthz, non-root, read-only root, key from a file`);
