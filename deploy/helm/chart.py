"""Upstream's kata-deploy chart with deploy/helm's values and patch, checked
without Helm: renders the chart's templates/kata-monitor.yaml (a copy in
tests/fixtures/kata-deploy/, with the chart's values.yaml keys it reads) the
way `helm template` does for the constructs that file uses, merges
kata-monitor-values.yaml over the chart's values, applies kata-run-mount.yaml
as a strategic merge (containers, volumeMounts and volumes by name), and
returns the DaemonSet for deploy/validate.py to check.

The renderer knows exactly what that template uses: `if`/`with ... end`
blocks, `.Values.x.y`, `.Release.*`, `toYaml ... | nindent N` and the
chart's four `include` helpers (_helpers.tpl, re-implemented for their
default branches: k8sDistribution "k8s", no containerd.runtimeSocket). Any
other construct is an error, so an updated template cannot be misread.
"""

import copy
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "kata-deploy")
VALUES = os.path.join(HERE, "kata-monitor-values.yaml")
PATCH = os.path.join(HERE, "kata-run-mount.yaml")
APP_VERSION = "4.1.0"  # the chart's appVersion at the copied commit
RELEASE = {"Name": "kata-deploy", "Namespace": "kube-system"}


def merge_values(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_values(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def lookup(values, path):
    v = {"Values": values, "Release": RELEASE}
    for part in path.strip(".").split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def include(name, values):
    """The chart's helpers (_helpers.tpl at the copied commit)."""
    mon = values["monitor"]
    endpoint = mon.get("runtimeEndpoint") or "unix:///run/containerd/containerd.sock"
    if values.get("k8sDistribution", "k8s") != "k8s" and not mon.get("runtimeEndpoint"):
        raise ValueError("only k8sDistribution k8s is rendered here")
    if name == "kata-deploy.monitorImage":
        ref, tag = mon["image"]["reference"], str(mon["image"].get("tag") or APP_VERSION)
        return ref if "@" in ref else f"{ref}:{tag}"
    if name == "monitorRuntimeEndpoint":
        return endpoint
    if name == "monitorRuntimeSocketDir":
        return os.path.dirname(re.sub(r"^unix:(//)?", "", endpoint))
    if name == "monitorLogLevel":
        level = (mon.get("logLevel") or "").strip() or (values.get("logLevel") or "").strip()
        return level or ("debug" if values.get("debug") else "info")
    raise ValueError(f"unknown helper {name}")


def render(template, values, yaml):
    out, stack = [], []  # stack: (block is on, value of `.` inside it)
    for line in template.splitlines():
        stripped = line.strip()
        if stripped.startswith("{{/*"):
            continue
        dot = next((d for _, d in reversed(stack) if d is not None), None)
        m = re.fullmatch(r"\{\{-? *(if|with) +(\.[\w.]+) *-?\}\}", stripped)
        if m:
            v = lookup(values, m.group(2))
            stack.append((bool(v), v if m.group(1) == "with" else None))
            continue
        if re.fullmatch(r"\{\{-? *end *-?\}\}", stripped):
            stack.pop()
            continue
        if not all(on for on, _ in stack):
            continue

        def value(e):
            return dot if e == "." else lookup(values, e)

        m = re.fullmatch(r"\{\{- *toYaml +(\.[\w.]*) *\| *nindent +(\d+) *\}\}", stripped)
        if m:
            text = yaml.safe_dump(value(m.group(1)), default_flow_style=False,
                                  sort_keys=False).rstrip("\n")
            out.extend(" " * int(m.group(2)) + t for t in text.splitlines())
            continue

        def expr(mm):
            e = mm.group(1).strip()
            inc = re.fullmatch(r'include +"([\w.-]+)" +\.', e)
            if inc:
                return include(inc.group(1), values)
            q = re.fullmatch(r"(\.[\w.]*) *\| *quote", e)
            if q:
                return '"' + str(value(q.group(1))).replace('"', '\\"') + '"'
            if re.fullmatch(r"\.[\w.]+", e):
                return str(value(e))
            raise ValueError(f"unsupported template expression {{{{ {e} }}}}")

        out.append(re.sub(r"\{\{-? *(.*?) *-?\}\}", expr, line))
    if stack:
        raise ValueError("unbalanced if/with/end")
    return "\n".join(out) + "\n"


def smp_list(base, patch, key):
    """Strategic merge of two lists of objects by `key`."""
    out = copy.deepcopy(base)
    for item in patch:
        same = [o for o in out if o.get(key) == item.get(key)]
        if same:
            same[0].update(smp(same[0], item))
        else:
            out.append(copy.deepcopy(item))
    return out


MERGE_KEYS = {"containers": "name", "volumeMounts": "mountPath", "volumes": "name"}


def smp(base, patch):
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if k in MERGE_KEYS and isinstance(v, list):
            out[k] = smp_list(out.get(k, []), v, MERGE_KEYS[k])
        elif v is None:
            # As in kubectl's strategic merge: null deletes the field.
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = smp(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def daemonset(yaml, values_file=VALUES, patched=True):
    """The chart's kata-monitor DaemonSet with our values (and patch)."""
    with open(os.path.join(FIXTURE, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(values_file) as f:
        values = merge_values(values, yaml.safe_load(f))
    with open(os.path.join(FIXTURE, "kata-monitor.yaml")) as f:
        ds = yaml.safe_load(render(f.read(), values, yaml))
    if patched:
        with open(PATCH) as f:
            patch = yaml.safe_load(f)
        for k in ("apiVersion", "kind"):
            if patch.get(k) != ds.get(k):
                raise ValueError(f"patch {k} {patch.get(k)!r} is not the chart's {ds.get(k)!r}")
        if patch["metadata"]["name"] != ds["metadata"]["name"]:
            raise ValueError("patch names another DaemonSet")
        ds = smp(ds, {"spec": patch["spec"]})
    return ds
