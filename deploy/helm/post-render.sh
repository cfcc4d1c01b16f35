#!/usr/bin/env bash
# Helm post-renderer for upstream's kata-deploy chart: adds the /run/kata
# mount (kata-run-mount.yaml) to its kata-monitor DaemonSet, so runtime-rs
# sandboxes are monitored too. Reads the rendered manifests on stdin, writes
# them patched to stdout, with kustomize (`kubectl kustomize`, or a
# standalone `kustomize` binary).
#
#   helm upgrade --install kata-deploy <chart> -n kube-system \
#       -f deploy/helm/kata-monitor-values.yaml --post-renderer deploy/helm/post-render.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/all.yaml"
cp "$here/kata-run-mount.yaml" "$work/kata-run-mount.yaml"
cat >"$work/kustomization.yaml" <<'KUST'
resources:
  - all.yaml
patches:
  - path: kata-run-mount.yaml
    target:
      kind: DaemonSet
      name: kata-monitor
KUST
if command -v kustomize >/dev/null; then
    kustomize build "$work"
elif command -v kubectl >/dev/null; then
    kubectl kustomize "$work"
else
    echo "post-render.sh: needs kustomize or kubectl" >&2
    exit 1
fi
