#!/bin/bash
# Starts a private containerd (with its built-in CRI plugin) whose whole state lives
# under DIR, for tests that need a real CRI server. Usage (as root):
#
#   tests/peers/start-containerd.sh DIR     # last line on stdout: the socket path
#   tests/peers/stop-containerd.sh DIR      # tear it all down
#
# - The socket is DIR/containerd.sock (the CRI RuntimeService shares it). Unix socket
#   paths are limited to 107 bytes, so keep DIR short (e.g. /tmp/kmc-XXXX).
# - Besides the default "runc" runtime handler it registers "kata", which is really
#   runc: RunPodSandbox with runtime_handler "kata" gives real READY sandboxes whose
#   ListPodSandbox entries say runtime_handler "kata". No Kata, no VM, no CNI needed
#   for hostNetwork pods (namespace_options.network = NODE, and no hostname).
# - The sandbox ("pause") image localhost/pause:test is built offline: a static C
#   binary (pause.c, needs gcc + libc6-dev) in a one-layer OCI tarball (mkimage.py).
# - Idempotent: if containerd already answers on DIR/containerd.sock it is reused.
# - WITH_CNI=1 adds a bridge network (needs containernetworking-plugins) for
#   non-hostNetwork pods; off by default because it touches the host's links.
# - containerd's log: DIR/containerd.log; its pid: DIR/containerd.pid.
# Needs what tests/peers/install.sh installs.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
HERE=$(dirname "$(realpath "$0")")
D=$(realpath -m "$1")
SOCK="$D/containerd.sock"
if [ ${#SOCK} -gt 100 ]; then # leaves room for the ".ttrpc" sibling within 107 bytes
	echo "start-containerd.sh: socket path too long (${#SOCK} bytes): $SOCK" >&2
	exit 1
fi
for tool in containerd ctr runc gcc python3; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "start-containerd.sh: $tool not found (run tests/peers/install.sh)" >&2
		exit 1
	}
done

ctr_() { ctr --address "$SOCK" --connect-timeout 2s "$@"; }
# (without a socket, or with a stale one, ctr would retry for 10 s)
alive() { [ -S "$SOCK" ] && ctr_ version >/dev/null 2>&1; }

mkdir -p "$D"/{root,state,runc,opt,cni/net.d,cni/ipam,podlogs}

if ! alive; then
	# stale leftovers of a crashed run
	if [ -f "$D/containerd.pid" ]; then
		P=$(cat "$D/containerd.pid")
		if [ -n "$P" ] && grep -qF "$D/config.toml" "/proc/$P/cmdline" 2>/dev/null; then
			kill -9 "$P" 2>/dev/null || true
		fi
		rm -f "$D/containerd.pid"
	fi
	rm -f "$SOCK" "$SOCK.ttrpc"

	cat >"$D/config.toml" <<CONF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$D/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/pause:test"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    # no CAP_SYS_RESOURCE in some test environments
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = "$D/runc"
      # fake "kata" handler: really runc, but sandboxes report runtime_handler "kata"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata.options]
          Root = "$D/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$D/cni/net.d"
CONF
	if [ "${WITH_CNI:-0}" = 1 ] && [ -x /usr/lib/cni/bridge ]; then
		cat >"$D/cni/net.d/10-bridge.conflist" <<CONF
{"cniVersion": "1.0.0", "name": "testnet", "plugins": [
  {"type": "bridge", "bridge": "kmtest0", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$D/cni/ipam", "ranges": [[{"subnet": "10.99.0.0/24"}]]}}]}
CONF
	fi

	# background job of a non-interactive shell: survives this script, ignores SIGINT
	containerd --config "$D/config.toml" </dev/null >"$D/containerd.log" 2>&1 &
	echo $! >"$D/containerd.pid"
	for _ in $(seq 200); do # ready in ~0.1 s; give it 10 s
		alive && break
		kill -0 "$(cat "$D/containerd.pid")" 2>/dev/null || break
		sleep 0.05
	done
	if ! alive; then
		echo "start-containerd.sh: containerd did not come up; end of $D/containerd.log:" >&2
		tail -n 20 "$D/containerd.log" >&2 || true
		exit 1
	fi
fi

# sandbox image: static pause binary in a one-layer OCI tarball, imported once
if ! ctr_ -n k8s.io images ls -q | grep -qxF localhost/pause:test; then
	if [ ! -s "$D/pause.tar" ]; then
		gcc -static -Os -s -o "$D/pause" "$HERE/pause.c"
		python3 "$HERE/mkimage.py" "$D/pause.tar.tmp" localhost/pause:test "$D/pause:/pause" -- /pause >/dev/null
		mv "$D/pause.tar.tmp" "$D/pause.tar"
	fi
	ctr_ -n k8s.io images import "$D/pause.tar" >/dev/null
fi

echo "$SOCK"
