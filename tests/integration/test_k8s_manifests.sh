#!/usr/bin/env bash
# tests/integration/test_k8s_manifests.sh BUILD_DIR - the Kubernetes manifests of
# docs/deploy/kubernetes/ (issue 17) checked against the fields they use and against the
# real binary:
#   * every file parses as YAML (PyYAML, Debian's python3-yaml) and every document has
#     apiVersion and kind, of the expected kinds (a master Deployment + Service, a worker
#     StatefulSet + its headless Service, a Secret);
#   * every container runs `ember master` or `ember worker` and uses only flags that
#     `ember master --help` / `ember worker --help` of BUILD_DIR print; each flag that
#     takes a value has one;
#   * the master Service's targetPorts name ports of the master container, and --port /
#     --ui-port are those ports; the readiness probe hits the UI port, which listens on
#     a wildcard --ui-host;
#   * the worker's --master URL is ember://<master Service>:<its cluster port>; its
#     --advertise-host is the pod's stable name under the StatefulSet's headless Service,
#     built from downward-API variables that the container defines;
#   * the Secret is mounted (0400/0600, no group/other bits) and --secret-file is the file
#     of that mount; the Secret has the key the volume projects;
#   * labels/selectors: every Service and workload selector matches its pod template;
#   * the worker's cpu request/limit equal --cores; its memory covers --memory.
# Fails with a message naming the file, the document and the field. Runs in well under a
# second; needs no cluster.
set -euo pipefail

build=$(cd "${1:?usage: test_k8s_manifests.sh BUILD_DIR}" && pwd)
ember=$build/bin/ember
src=$(cd "$(dirname "$0")/../.." && pwd)
dir=${K8S_MANIFEST_DIR:-$src/docs/deploy/kubernetes}

fail() { echo "test_k8s_manifests: FAIL: $*" >&2; exit 1; }
[ -x "$ember" ] || fail "$ember not built"
[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 missing (make check installs python3)"
/usr/bin/python3 -c 'import yaml' 2>/dev/null ||
    fail "PyYAML missing: apt-get install python3-yaml (make check installs it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-k8s-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$ember" master --help >"$tmp/master.help" 2>&1 || fail "ember master --help failed"
"$ember" worker --help >"$tmp/worker.help" 2>&1 || fail "ember worker --help failed"

/usr/bin/python3 - "$dir" "$tmp" <<'PY'
import glob, os, re, sys
import yaml

mdir, tmp = sys.argv[1], sys.argv[2]
helps = {c: open(os.path.join(tmp, c + ".help")).read() for c in ("master", "worker")}

def die(msg):
    sys.stderr.write("test_k8s_manifests: FAIL: %s\n" % msg)
    sys.exit(1)

def need(cond, msg):
    if not cond:
        die(msg)

files = sorted(glob.glob(os.path.join(mdir, "*.yaml")) + glob.glob(os.path.join(mdir, "*.yml")))
need(files, "no *.yaml in %s" % mdir)

KINDS = {"Service": "v1", "Secret": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1"}
docs = []
for f in files:
    try:
        with open(f) as fh:
            loaded = list(yaml.safe_load_all(fh))
    except yaml.YAMLError as e:
        die("%s: not YAML: %s" % (f, e))
    for i, d in enumerate(loaded):
        if d is None:
            continue
        where = "%s, document %d" % (os.path.basename(f), i + 1)
        need(isinstance(d, dict), "%s: not a mapping" % where)
        need(d.get("apiVersion") and d.get("kind"), "%s: apiVersion or kind missing" % where)
        need(d["kind"] in KINDS, "%s: unexpected kind %r" % (where, d["kind"]))
        need(d["apiVersion"] == KINDS[d["kind"]],
             "%s: %s wants apiVersion %s, has %r" % (where, d["kind"], KINDS[d["kind"]], d["apiVersion"]))
        need(isinstance(d.get("metadata"), dict) and d["metadata"].get("name"),
             "%s: metadata.name missing" % where)
        d["_where"] = where + " (%s %s)" % (d["kind"], d["metadata"]["name"])
        docs.append(d)

def of_kind(k):
    return [d for d in docs if d["kind"] == k]

need(len(of_kind("Deployment")) == 1, "want exactly one Deployment (the master)")
need(len(of_kind("StatefulSet")) == 1, "want exactly one StatefulSet (the workers)")
need(len(of_kind("Secret")) == 1, "want exactly one Secret (the cluster secret)")
need(len(of_kind("Service")) == 2, "want two Services (the master's, the workers' headless one)")
dep, sts, secret = of_kind("Deployment")[0], of_kind("StatefulSet")[0], of_kind("Secret")[0]

def get(d, path):
    cur = d
    for p in path.split("."):
        need(isinstance(cur, dict) and p in cur, "%s: %s missing" % (d["_where"], path))
        cur = cur[p]
    return cur

# --- labels and selectors --------------------------------------------------------------
def pod_labels(w):
    return get(w, "spec.template.metadata.labels")

def matches(sel, labels):
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

for w in (dep, sts):
    sel = get(w, "spec.selector.matchLabels")
    need(matches(sel, pod_labels(w)),
         "%s: spec.selector.matchLabels %r does not match the pod labels %r" % (w["_where"], sel, pod_labels(w)))
need(not matches(get(dep, "spec.selector.matchLabels"), pod_labels(sts)) and
     not matches(get(sts, "spec.selector.matchLabels"), pod_labels(dep)),
     "the master's and the workers' selectors overlap")

svcs = {}
for s in of_kind("Service"):
    sel = get(s, "spec.selector")
    hits = [w for w in (dep, sts) if matches(sel, pod_labels(w))]
    need(len(hits) == 1, "%s: selector %r selects %d workloads, want 1" % (s["_where"], sel, len(hits)))
    svcs[hits[0]["kind"]] = s
need("Deployment" in svcs and "StatefulSet" in svcs, "want one Service for the master and one for the workers")
msvc, wsvc = svcs["Deployment"], svcs["StatefulSet"]
need(wsvc["spec"].get("clusterIP") == "None", "%s: must be headless (clusterIP: None)" % wsvc["_where"])
need(get(sts, "spec.serviceName") == wsvc["metadata"]["name"],
     "%s: serviceName %r is not the headless Service %r" % (sts["_where"], sts["spec"].get("serviceName"), wsvc["metadata"]["name"]))

# --- containers: command, flags -----------------------------------------------------------
def only_container(w):
    cs = get(w, "spec.template.spec.containers")
    need(isinstance(cs, list) and len(cs) == 1, "%s: want one container" % w["_where"])
    return cs[0]

def help_flags(text):
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", text))

def parse_args(w, c, sub):
    argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    where = "%s, container %s" % (w["_where"], c.get("name"))
    need(len(argv) >= 2 and os.path.basename(argv[0]) == "ember",
         "%s: command must start with ember, has %r" % (where, argv[:2]))
    need(argv[1] == sub, "%s: want `ember %s`, has `ember %s`" % (where, sub, argv[1]))
    known = help_flags(helps[sub])
    flags, i = {}, 2
    while i < len(argv):
        a = argv[i]
        need(a.startswith("--"), "%s: stray argument %r" % (where, a))
        name, eq, val = a.partition("=")
        need(name in known, "%s: `ember %s --help` has no flag %s" % (where, sub, name))
        need(name not in ("--help",), "%s: --help in a daemon's arguments" % where)
        if not eq:
            need(i + 1 < len(argv) and not argv[i + 1].startswith("--"),
                 "%s: %s has no value" % (where, name))
            val = argv[i + 1]
            i += 1
        need(name not in flags, "%s: %s given twice" % (where, name))
        flags[name] = val
        i += 1
    return where, flags

mc, wc = only_container(dep), only_container(sts)
mwhere, mflags = parse_args(dep, mc, "master")
wwhere, wflags = parse_args(sts, wc, "worker")

# --- master ports, Service, probe --------------------------------------------------------
mports = {p.get("name"): p.get("containerPort") for p in mc.get("ports") or []}
need(mports, "%s: no ports" % mwhere)
need(str(mflags.get("--port", "7077")) in [str(v) for v in mports.values()],
     "%s: --port %s is not a containerPort %r" % (mwhere, mflags.get("--port", "7077"), mports))
uiport = str(mflags.get("--ui-port", "8080"))
need(uiport != "0", "%s: --ui-port 0 leaves nothing to probe" % mwhere)
need(uiport in [str(v) for v in mports.values()], "%s: --ui-port %s is not a containerPort" % (mwhere, uiport))
need(mflags.get("--host") in ("0.0.0.0", "::"), "%s: --host must be a wildcard in a pod" % mwhere)
need(mflags.get("--ui-host") in ("0.0.0.0", "::"),
     "%s: --ui-host must be a wildcard for the probe and the Service" % mwhere)

def resolve(port):
    if isinstance(port, int):
        need(port in mports.values(), "%s: port %d is not a containerPort" % (mwhere, port))
        return port
    need(port in mports, "%s: named port %r is not a containerPort name of the master" % (mwhere, port))
    return mports[port]

svc_ports = {}
for p in get(msvc, "spec.ports"):
    tp = resolve(p.get("targetPort", p.get("port")))
    svc_ports[p.get("name")] = (p["port"], tp)
need(sorted(t for _, t in svc_ports.values()) == sorted(mports.values()),
     "%s: targetPorts %r are not the master's ports %r" % (msvc["_where"], svc_ports, mports))
cluster_port = [sp for sp, tp in svc_ports.values() if str(tp) == str(mflags.get("--port", "7077"))]
need(cluster_port, "%s: no Service port reaches the master's --port" % msvc["_where"])

rp = mc.get("readinessProbe") or {}
need("httpGet" in rp, "%s: readinessProbe.httpGet missing" % mwhere)
need(str(resolve(rp["httpGet"].get("port"))) == uiport,
     "%s: the readiness probe does not hit --ui-port %s" % (mwhere, uiport))
need(rp["httpGet"].get("path") in ("/", "/json"), "%s: probe path %r is not a status page" % (mwhere, rp["httpGet"].get("path")))
need(str(mflags.get("--advertise-host")) == msvc["metadata"]["name"],
     "%s: --advertise-host %r is not the Service name %r" % (mwhere, mflags.get("--advertise-host"), msvc["metadata"]["name"]))

# --- the worker's master URL, advertised host -----------------------------------------------
want = "ember://%s:%s" % (msvc["metadata"]["name"], cluster_port[0])
need(wflags.get("--master") == want, "%s: --master %r, want %r (the master Service)" % (wwhere, wflags.get("--master"), want))
need(wflags.get("--host") in ("0.0.0.0", "::"), "%s: --host must be a wildcard in a pod" % wwhere)
adv = wflags.get("--advertise-host", "")
env = {e["name"]: e for e in wc.get("env") or []}
for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", adv):
    need(var in env, "%s: --advertise-host uses $(%s), which env does not define" % (wwhere, var))
need(adv.startswith("$(") and adv.split(".")[0][2:-1] in env and
     env[adv.split(".")[0][2:-1]].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
     "%s: --advertise-host %r must start with the pod name from the downward API" % (wwhere, adv))
need(adv.split(".")[1:2] == [wsvc["metadata"]["name"]],
     "%s: --advertise-host %r is not under the headless Service %r" % (wwhere, adv, wsvc["metadata"]["name"]))

# --- the secret ------------------------------------------------------------------------------
sname, skeys = secret["metadata"]["name"], set((secret.get("stringData") or {}).keys()) | set((secret.get("data") or {}).keys())
for w, c, where, flags in ((dep, mc, mwhere, mflags), (sts, wc, wwhere, wflags)):
    sf = flags.get("--secret-file")
    need(sf, "%s: --secret-file missing" % where)
    vols = {v["name"]: v for v in get(w, "spec.template.spec.volumes")}
    found = False
    for m in c.get("volumeMounts") or []:
        v = vols.get(m["name"])
        need(v is not None, "%s: volumeMount %r has no volume" % (where, m["name"]))
        if "secret" not in v:
            continue
        need(v["secret"].get("secretName") == sname,
             "%s: volume %r mounts Secret %r, not %r" % (where, v["name"], v["secret"].get("secretName"), sname))
        mode = v["secret"].get("defaultMode")
        need(isinstance(mode, int) and mode & 0o077 == 0 and mode & 0o400,
             "%s: secret volume defaultMode %r: ember wants 0400 or 0600" % (where, mode))
        need(not (get(w, "spec.template.spec").get("securityContext") or {}).get("fsGroup"),
             "%s: fsGroup would make the secret group-readable, which ember refuses" % where)
        items = v["secret"].get("items") or [{"key": k, "path": k} for k in skeys]
        for it in items:
            need(it["key"] in skeys, "%s: key %r is not in Secret %s" % (where, it["key"], sname))
            if os.path.join(m["mountPath"], it["path"]) == sf:
                found = True
                need(m.get("readOnly") is True, "%s: the secret mount must be readOnly" % where)
    need(found, "%s: --secret-file %s is not a file of a mounted Secret %s" % (where, sf, sname))

# --- worker resources ------------------------------------------------------------------------
def cpu(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)

UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
def kmem(q):
    m = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi|Ti|k|M|G)?", str(q))
    need(m, "memory quantity %r not understood" % q)
    return int(m.group(1)) * UNITS.get(m.group(2) or "", 1)

def ember_size(s):
    m = re.fullmatch(r"([0-9]+)([kmgt]?)b?", str(s).lower())
    need(m, "%s: --memory %r not understood" % (wwhere, s))
    return int(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2)]

res = wc.get("resources") or {}
cores = wflags.get("--cores")
need(cores, "%s: --cores missing (the default, all online CPUs, is the node's, not the pod's)" % wwhere)
for k in ("requests", "limits"):
    need(cpu(res.get(k, {}).get("cpu", -1)) == float(cores),
         "%s: resources.%s.cpu %r is not --cores %s" % (wwhere, k, res.get(k, {}).get("cpu"), cores))
    mem = kmem(res.get(k, {}).get("memory", 0))
    offer = ember_size(wflags.get("--memory", "4g"))
    need(offer <= mem <= offer + 2 * 2**30,
         "%s: resources.%s.memory %r must cover --memory %s plus at most 2Gi for the worker"
         % (wwhere, k, res.get(k, {}).get("memory"), wflags.get("--memory", "4g")))
for w, c in ((dep, mc), (sts, wc)):
    need(c.get("image"), "%s: image missing" % w["_where"])

print("test_k8s_manifests: %d documents in %d files ok" % (len(docs), len(files)))
PY
echo "test_k8s_manifests: PASS"
