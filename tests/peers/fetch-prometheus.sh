#!/bin/bash
# Fetches Prometheus (server and promtool) from Debian's packages without
# installing its ~330 MB of web-UI dependencies: `apt-get download` the .deb
# and unpack it. Usage: tests/peers/fetch-prometheus.sh DIR
# Afterwards DIR/usr/bin/prometheus and DIR/usr/bin/promtool exist (they need
# only libc). Idempotent; prints DIR/usr/bin on success.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: fetch-prometheus.sh DIR}")
if [ -x "$DIR/usr/bin/prometheus" ] && [ -x "$DIR/usr/bin/promtool" ]; then
    echo "$DIR/usr/bin"
    exit 0
fi
mkdir -p "$DIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
if ! apt-get download prometheus >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get download prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb "$DIR"
"$DIR/usr/bin/prometheus" --version >/dev/null
"$DIR/usr/bin/promtool" --version >/dev/null
echo "$DIR/usr/bin"
