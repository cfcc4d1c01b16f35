#!/bin/bash
# Stops the containerd that start-containerd.sh started in DIR and removes DIR, even
# with pods (sandbox tasks and their runc shims) left running. Usage (as root):
#
#   tests/peers/stop-containerd.sh DIR
#
# Idempotent: exits 0 when DIR is already gone or containerd is not running.
# Only touches processes of this instance: containerd by its pid file (checked
# against its command line), shims by their "-address DIR/containerd.sock" and
# containers through runc's state in DIR/runc.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
D=$(realpath -m "$1")
SOCK="$D/containerd.sock"
[ -d "$D" ] || exit 0

ctr_() { ctr --address "$SOCK" --connect-timeout 2s -n k8s.io "$@" 2>/dev/null; }

# 1. kill and delete the tasks (sandboxes) while containerd still answers
if [ -S "$SOCK" ] && ctr_ version >/dev/null; then
	tasks=$(ctr_ tasks ls -q || true)
	if [ -n "$tasks" ]; then
		for t in $tasks; do ctr_ tasks kill -s SIGKILL "$t" >/dev/null || true; done
		sleep 0.3
		for t in $(ctr_ tasks ls -q || true); do ctr_ tasks rm -f "$t" >/dev/null || true; done
	fi
	for c in $(ctr_ containers ls -q || true); do ctr_ containers rm "$c" >/dev/null || true; done
fi

# 2. stop containerd (TERM, then KILL after 5 s). It was reparented to init, so once
#    dead it may linger as a zombie until init reaps it: count that as gone.
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
if [ -f "$D/containerd.pid" ]; then
	P=$(cat "$D/containerd.pid")
	if [ -n "$P" ] && grep -qF "$D/config.toml" "/proc/$P/cmdline" 2>/dev/null; then
		kill "$P" 2>/dev/null || true
		for _ in $(seq 100); do
			running "$P" || break
			sleep 0.05
		done
		! running "$P" || kill -9 "$P" 2>/dev/null || true
	fi
fi

# 3. shims that outlived containerd (they run detached): match their -address
for p in /proc/[0-9]*; do
	cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)
	case "$cmd" in
	*containerd-shim*"-address $SOCK "*) kill -9 "${p#/proc/}" 2>/dev/null || true ;;
	esac
done

# 4. containers whose shim is gone (their init survives a SIGKILLed shim): runc state
#    is under DIR/runc/<namespace>; `delete --force` kills them and drops their cgroups
for root in "$D"/runc/*/; do
	[ -d "$root" ] || continue
	for id in $(runc --root "$root" list -q 2>/dev/null || true); do
		runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
	done
done

# 5. leftover mounts (sandbox /dev/shm tmpfs, overlay rootfs, netns), deepest first
{ grep -F " $D/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true

# 6. WITH_CNI leftovers: the bridge and libcni's result cache, which lives outside DIR
#    (/var/lib/cni/results/<net>-<sandbox id>-<if>)
if [ -f "$D/cni/net.d/10-bridge.conflist" ]; then
	ip link del kmtest0 2>/dev/null || true
	for f in /var/lib/cni/results/*; do
		[ -e "$f" ] || continue
		id=$(basename "$f" | sed -E 's/^(testnet|cni-loopback)-([0-9a-f]{64})-.*/\2/')
		[ -e "$D/root/io.containerd.grpc.v1.cri/sandboxes/$id" ] && rm -f "$f"
	done
fi

rm -rf "$D"
