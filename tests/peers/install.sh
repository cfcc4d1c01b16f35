#!/bin/bash
# Installs what the real-peer tests (tests/cri_peers_selftest.rs and friends) need on
# Debian bookworm:
#   containerd, runc   the real CRI server (the CRI plugin is built into containerd)
#   gcc, libc6-dev     start-containerd.sh builds a static pause binary from pause.c
#   python3            mkimage.py wraps that binary into an OCI image tarball
#   qemu-user, binutils, file and the cross gcc packages (gcc-<triple> with
#                      libc6-dev-<arch>-cross) for aarch64, s390x and ppc64le:
#                      deploy/build-static.sh all, tests/peers/cross-test.sh and
#                      tests/static_arches.rs (deploy/targets.sh)
#   skopeo             .ci/run copies the multi-arch image archive with it
#   zstd, gzip         independent decoders of the /metrics content codings
#                      (tests/encodings.rs, tests/daemon.rs)
#
# Usage (as root): tests/peers/install.sh
# Idempotent and quiet: exits 0 at once when everything is already installed.
# `apt-get update` runs only when a first install attempt fails (stale or empty
# package lists, as on a fresh CI image). On failure apt's output goes to stderr.
set -euo pipefail

need=()
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# static linking needs libc.a, shipped by libc6-dev
dpkg-query -W -f='${Status}' libc6-dev 2>/dev/null | grep -q 'ok installed' || need+=(libc6-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
command -v file >/dev/null 2>&1 || need+=(file)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v gzip >/dev/null 2>&1 || need+=(gzip)
for q in qemu-aarch64 qemu-s390x qemu-ppc64le; do
	command -v "$q" >/dev/null 2>&1 || { need+=(qemu-user); break; }
done
for pair in aarch64-linux-gnu:arm64 s390x-linux-gnu:s390x powerpc64le-linux-gnu:ppc64el; do
	command -v "${pair%%:*}-gcc" >/dev/null 2>&1 || need+=("gcc-${pair%%:*}")
	dpkg-query -W -f='${Status}' "libc6-dev-${pair##*:}-cross" 2>/dev/null | grep -q 'ok installed' ||
		need+=("libc6-dev-${pair##*:}-cross")
done

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install.sh: root needed to install: ${need[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt_install() { apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log" 2>&1; }
if ! apt_install; then
	if ! apt-get update -qq >"$log" 2>&1 || ! apt_install; then
		cat "$log" >&2
		echo "install.sh: failed to install: ${need[*]}" >&2
		exit 1
	fi
fi
