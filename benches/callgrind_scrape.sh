#!/usr/bin/env bash
# Instructions per /metrics scrape (user space, callgrind: independent of the
# machine's load), per content coding, on a frozen kata-sim node.
#
#   benches/callgrind_scrape.sh [BIN] [SANDBOXES] [CODINGS...]
#   benches/callgrind_scrape.sh target/release/kata-monitor 100 identity gzip zstd
#
# For each coding the monitor runs under `valgrind --tool=callgrind` twice,
# scraped 2 and then 12 times over one keep-alive connection (curl); per
# scrape = (total(12) - total(2)) / 10, which cancels start-up and discovery.
# Needs valgrind and curl; BIN defaults to target/release/kata-monitor, with
# kata-sim beside it.
set -euo pipefail
bin=${1:-target/release/kata-monitor}
n=${2:-100}
shift 2 2>/dev/null || shift $#
codings=("$@")
[ ${#codings[@]} -gt 0 ] || codings=(identity gzip zstd)
sim="$(dirname "$bin")/kata-sim"
for tool in valgrind curl "$bin" "$sim"; do
    command -v "$tool" >/dev/null || { echo "callgrind_scrape: $tool not found" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))

# total instructions of one monitor run answering $2 scrapes with coding $1
run() {
    local coding=$1 scrapes=$2 roots line vp i urls=()
    coproc SIM { exec "$sim" --sandboxes "$n" --frozen --exit-on-eof; }
    read -r line <&"${SIM[0]}"
    roots=$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n 's/^roots=//p')
    while read -r line <&"${SIM[0]}"; do [ "$line" = end ] && break; done
    valgrind --tool=callgrind --callgrind-out-file="$work/cg" "$bin" \
        --sandbox-dirs "$roots" --shim-timeout 60s --log-level error \
        --listen-address "127.0.0.1:$port" >"$work/log" 2>&1 &
    vp=$!
    for i in $(seq 1 240); do
        [ "$(curl -s "http://127.0.0.1:$port/sandboxes" | wc -l)" -ge "$n" ] && break
        sleep 0.5
    done
    for i in $(seq 1 "$scrapes"); do urls+=("http://127.0.0.1:$port/metrics"); done
    if [ "$coding" = identity ]; then
        curl -sf "${urls[@]}" >/dev/null
    else
        curl -sf -H "Accept-Encoding: $coding" "${urls[@]}" >/dev/null
    fi
    kill -TERM "$vp"
    wait "$vp" || true
    exec {SIM[1]}>&-
    wait "$SIM_PID" 2>/dev/null || true
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/log"
}

echo "$n sandboxes, $bin; instructions per scrape, (total(12) - total(2)) / 10:"
for c in "${codings[@]}"; do
    a=$(run "$c" 2)
    b=$(run "$c" 12)
    awk -v c="$c" -v a="$a" -v b="$b" 'BEGIN { printf "%-9s %8.2f M\n", c, (b - a) / 10 / 1e6 }'
done
