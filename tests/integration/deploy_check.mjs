// SPDX-License-Identifier: Apache-2.0
// deploy_check.mjs OVERLAY RENDERED OUT_DIR: validate every object that `kubectl kustomize`
// rendered for deploy/overlays/OVERLAY against the Kubernetes API schemas (the npm
// kubernetes-models package: the API's OpenAPI definitions compiled to validators), with no
// field the schema does not define (as the API server's strict field validation and
// `kubectl --validate=strict` refuse them); check the shape docs/operations.md promises; and
// write what a pod would get to OUT_DIR: naftikod.yaml (the ConfigMap's file) and env (the
// container's environment, NAME=VALUE lines, with the downward API, the parameters and
// $(VAR) references resolved as the kubelet does).
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import Ajv from "ajv";

const [overlay, rendered, out] = process.argv.slice(2);
const errors = [];
const need = (cond, what) => { if (!cond) errors.push(what); };

// --- schema validation --------------------------------------------------------------------
// kubernetes-models' validators check types, enums, formats and required fields but accept
// unknown fields. Strictness is added here by watching which keys the validator reads: it
// reads every property its schema defines, and enumerates the keys of maps (labels, data), so
// a key of an object that was never read and whose object was never enumerated is a field
// the schema does not have (a misspelling).
function watch(value, path, checks) {
  if (value === null || typeof value !== "object") return value;
  const read = new Set();
  let enumerated = false;
  const kids = {};
  for (const k of Object.keys(value)) kids[k] = watch(value[k], `${path}/${k}`, checks);
  checks.push(() => (Array.isArray(value) || enumerated ? [] :
    Object.keys(value).filter((k) => !read.has(k)).map((k) => `${path}/${k}: unknown field`)));
  return new Proxy(value, {
    get(t, k, r) {
      if (typeof k !== "string") return Reflect.get(t, k, r);
      read.add(k);
      return Object.hasOwn(kids, k) ? kids[k] : Reflect.get(t, k, r);
    },
    has(t, k) { if (typeof k === "string") read.add(k); return Reflect.has(t, k); },
    ownKeys(t) { enumerated = true; return Reflect.ownKeys(t); },
  });
}

// apps/v1 Deployment -> IoK8sApiAppsV1Deployment (the kubernetes-models schema module).
function schemaModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const g = group.replace(/\.k8s\.io$/, "").split(".")
    .map((s) => s[0].toUpperCase() + s.slice(1)).join("");
  return `IoK8sApi${g}${version[0].toUpperCase()}${version.slice(1)}${kind}`;
}

// OpenShift's Route is not a Kubernetes API type: its schema (route.openshift.io/v1, the
// fields OpenShift 4 defines) is written out here, strict as well.
const str = { type: "string" };
const strMap = { type: "object", additionalProperties: str };
const routeTarget = {
  type: "object", additionalProperties: false, required: ["kind", "name"],
  properties: { kind: { enum: ["Service"] }, name: str, weight: { type: "integer", minimum: 0, maximum: 256 } },
};
const routeSchema = {
  type: "object", additionalProperties: false, required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    apiVersion: { const: "route.openshift.io/v1" }, kind: { const: "Route" },
    metadata: {
      type: "object", additionalProperties: false, required: ["name"],
      properties: { name: str, namespace: str, labels: strMap, annotations: strMap },
    },
    spec: {
      type: "object", additionalProperties: false, required: ["to"],
      properties: {
        host: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" },
        subdomain: str, path: str, to: routeTarget,
        alternateBackends: { type: "array", items: routeTarget, maxItems: 3 },
        port: {
          type: "object", additionalProperties: false, required: ["targetPort"],
          properties: { targetPort: { type: ["string", "integer"] } },
        },
        tls: {
          type: "object", additionalProperties: false, required: ["termination"],
          properties: {
            termination: { enum: ["edge", "passthrough", "reencrypt"] },
            insecureEdgeTerminationPolicy: { enum: ["Allow", "None", "Redirect", ""] },
            certificate: str, key: str, caCertificate: str, destinationCACertificate: str,
            externalCertificate: { type: "object", additionalProperties: false, properties: { name: str } },
          },
        },
        wildcardPolicy: { enum: ["None", "Subdomain"] },
      },
    },
  },
};
const validateRoute = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(routeSchema);

async function validate(obj) {
  const where = `${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string")
    return [`${where}: no apiVersion or kind`];
  if (obj.apiVersion === "route.openshift.io/v1" && obj.kind === "Route") {
    return validateRoute(obj) ? [] :
      validateRoute.errors.map((e) => `${where}${e.instancePath}: ${e.message}` +
        (e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""));
  }
  let mod;
  try {
    mod = await import(`kubernetes-models/_schemas/${schemaModule(obj.apiVersion, obj.kind)}`);
  } catch {
    return [`${where}: ${obj.apiVersion} ${obj.kind} is not a Kubernetes API type`];
  }
  const checks = [];
  const ok = mod.validate(watch(obj, "", checks));
  const errs = ok ? [] : mod.validate.errors.map((e) => `${where}${e.instancePath}: ${e.keyword} ${JSON.stringify(e.params)}`);
  return errs.concat(checks.flatMap((f) => f()).map((e) => `${where}${e}`));
}

const objs = [];
for (const d of parseAllDocuments(readFileSync(rendered, "utf8"))) {
  if (d.errors.length) { console.error(`FAIL: ${rendered}: ${d.errors[0].message}`); process.exit(1); }
  const o = d.toJS();
  if (o) objs.push(o);
}
for (const o of objs) errors.push(...(await validate(o)));

// --- the promised shape -------------------------------------------------------------------
const find = (kind, name) => objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const ns = "stackrox-agents";
for (const o of objs) need(o.metadata?.namespace === ns, `${o.kind}/${o.metadata?.name}: namespace is not ${ns}`);
const dep = find("Deployment", "naftikod");
need(dep, "no Deployment naftikod");
const cmFor = (ref) => objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === ref);
if (dep) {
  const pod = dep.spec.template.spec, c = pod.containers[0];
  need(dep.spec.replicas === undefined, "the Deployment sets replicas (the autoscaler owns them)");
  need(c.readinessProbe?.httpGet?.path === "/readyz" && c.readinessProbe.httpGet.port === "ops", "readiness is not /readyz on the ops port");
  need(c.livenessProbe?.httpGet?.path === "/healthz" && c.livenessProbe.httpGet.port === "ops", "liveness is not /healthz on the ops port");
  {
    // The lame duck (shutdown-delay) replaces a preStop sleep: the pod keeps serving with /readyz
    // 503 while the endpoints drop it; the grace period must cover it and the drain.
    const conf = cmFor(pod.volumes.find((v) => v.name === "config")?.configMap?.name ?? "")?.data?.["naftikod.yaml"] ?? "";
    const delay = Number((/^shutdown-delay:\s*(\d+)\s*$/m.exec(conf) ?? [])[1] ?? NaN);
    const drainMs = Number((c.env ?? []).find((e) => e.name === "NAFTIKOD_DRAIN_TIMEOUT_MS")?.value ?? 10000);
    need(delay >= 5, "naftikod.yaml sets no shutdown-delay of at least 5 s (the lame duck)");
    need(/^replicas:\s*true\s*$/m.test(conf), "naftikod.yaml does not say replicas: true");
    need(c.lifecycle?.preStop === undefined, "a preStop hook adds to the lame duck: remove it");
    need(pod.terminationGracePeriodSeconds >= delay + drainMs / 1000 + 5,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} does not cover the lame duck (${delay} s) and the drain (${drainMs / 1000} s) plus 5 s`);
  }
  need(/^[a-z0-9.-]+(:[0-9]+)?\/[a-z0-9._/-]+:[A-Za-z0-9._-]+$/.test(c.image) && c.image.split("/")[0].includes("."),
    `image ${c.image} has no registry and tag`);
  need(c.securityContext.readOnlyRootFilesystem === true, "root file system not read-only");
  need(c.securityContext.allowPrivilegeEscalation === false, "privilege escalation allowed");
  need(c.securityContext.capabilities.drop.includes("ALL"), "capabilities not dropped");
  need(pod.securityContext.runAsNonRoot === true, "runAsNonRoot not set");
  need(pod.securityContext.seccompProfile?.type === "RuntimeDefault", "no RuntimeDefault seccomp");
  need((pod.topologySpreadConstraints ?? []).length >= 2, "no topology spread over zones and nodes");
  if (overlay === "openshift") {
    for (const f of ["runAsUser", "runAsGroup", "fsGroup"])
      need(pod.securityContext[f] === undefined, `${f} is fixed: the restricted SCC assigns it`);
  } else {
    need(pod.securityContext.runAsUser === 10001 && pod.securityContext.fsGroup === 10001,
      "no runAsUser 10001 and fsGroup 10001: the Secret files would be root's alone");
  }
  const vol = (n) => pod.volumes.find((v) => v.name === n);
  need(vol("secrets")?.secret?.defaultMode === 0o440, "the Secret is not mounted 0440");
  need(vol("central-ca")?.secret?.secretName === "naftikod-central-ca", "no Central CA Secret mounted");
  const cfgName = vol("config")?.configMap?.name ?? "";
  need(/^naftikod-[a-z0-9]{10}$/.test(cfgName) && cmFor(cfgName), `the config ConfigMap ${cfgName} is not a generated (hashed) one`);

  // The pod's environment, as the kubelet makes it.
  const env = new Map();
  for (const e of c.env) {
    let v;
    if (e.valueFrom?.fieldRef) v = e.valueFrom.fieldRef.fieldPath === "metadata.namespace" ? dep.metadata.namespace : undefined;
    else if (e.valueFrom?.configMapKeyRef) v = cmFor(e.valueFrom.configMapKeyRef.name)?.data?.[e.valueFrom.configMapKeyRef.key];
    else v = (e.value ?? "").replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => (env.has(n) ? env.get(n) : m));
    need(v !== undefined, `env ${e.name}: its source is missing`);
    env.set(e.name, v ?? "");
  }
  const hosts = (env.get("NAFTIKOD_MCP_ALLOWED_HOSTS") ?? "").split(",");
  for (const h of [`naftikod.${ns}`, `naftikod.${ns}.svc`, `naftikod.${ns}.svc.cluster.local`])
    need(hosts.includes(h), `NAFTIKOD_MCP_ALLOWED_HOSTS lacks ${h}`);
  need(env.get("NAFTIKOD_CA_FILE")?.startsWith("/run/secrets/naftikod-central-ca/"), "NAFTIKOD_CA_FILE is not the mounted CA");
  need(env.get("STACKROX_API_KEY_FILE")?.startsWith("/run/secrets/naftikod/"), "the key does not come from the Secret's file");
  for (const r of objs.filter((o) => o.kind === "Route")) {
    need(r.spec.host && hosts.includes(r.spec.host) || (env.get("NAFTIKOD_REST_ALLOWED_HOSTS") ?? "").split(",").includes(r.spec.host),
      `Route ${r.metadata.name}: host ${r.spec.host} is not an allowed Host name`);
  }
  if (out) {
    writeFileSync(`${out}/naftikod.yaml`, cmFor(cfgName)?.data?.["naftikod.yaml"] ?? "");
    writeFileSync(`${out}/env`, [...env].map(([k, v]) => `${k}=${v}\n`).join(""));
  }
}
need(find("Service", "naftikod"), "no Service");
need(find("PodDisruptionBudget"), "no PodDisruptionBudget");
const hpa = find("HorizontalPodAutoscaler");
need(hpa?.spec?.metrics?.[0]?.resource?.name === "cpu" && hpa.spec.minReplicas >= 2, "no HorizontalPodAutoscaler on CPU with at least 2 pods");
const np = find("NetworkPolicy");
need(np?.spec?.policyTypes?.includes("Egress"), "no egress policy");
need(np && !JSON.stringify(np.spec.ingress).includes("metadata.name\":\"" + ns), "the NetworkPolicy admits one namespace's clients only");
const dnsNs = overlay === "openshift" ? "openshift-dns" : "kube-system";
need(np && JSON.stringify(np.spec.egress).includes(`"kubernetes.io/metadata.name":"${dnsNs}"`), `no DNS egress to ${dnsNs}`);
if (overlay === "openshift") need(objs.filter((o) => o.kind === "Route").length === 2, "no Routes for the two adapters");

if (errors.length) {
  for (const e of errors) console.error(`FAIL [${overlay}]: ${e}`);
  process.exit(1);
}
console.log(`ok [${overlay}]: ${objs.length} objects valid against the Kubernetes schemas (no unknown field), shape as documented`);
