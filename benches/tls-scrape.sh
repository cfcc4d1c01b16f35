#!/usr/bin/env bash
# Instructions per /metrics scrape, plain HTTP beside HTTPS, counted by
# callgrind (user space only, so independent of the machine's load); with
# -c, the monitor's own CPU instead, interleaved. (benches/callgrind_scrape.sh
# compares content codings over plain HTTP.)
#
#   benches/tls-scrape.sh [-n SANDBOXES] [-g] [-c ROUNDS] BIN...
#
# For each BIN (e.g. target/static/kata-monitor, or builds with another
# crypto provider) and each mode (http, https; with -g also their gzip
# forms): a kata-sim node of SANDBOXES (default 100) default.prom sandboxes,
# the monitor under `valgrind --tool=callgrind` (--shim-timeout 60s: it runs
# ~50x slower), scraped 2 and then 12 times over one keep-alive connection
# by curl (HTTPS: TLS 1.3, the client certificate required and presented);
# per scrape = (total(12) - total(2)) / 10, so start-up, certificate loading
# and the one handshake cancel out. The handshake's own cost is printed
# too: https total(2) - http total(2) - 2 x the per-scrape difference.
# Certificates are made with the openssl CLI (ECDSA P-256, as cert-manager's
# ECDSA issuers and rcgen make them).
#
# With -c ROUNDS, no callgrind: the monitor runs natively and its own CPU
# time (/proc/<pid>/schedstat, user + system, ns) over 30 scrapes on one
# connection is taken per mode, the modes alternating ROUNDS times (an
# interleaved run: load from other processes hits every mode alike).
#
# Output: one line per BIN and mode; the figures BENCHMARKS.md quotes.
# With CALLGRIND_KEEP=DIR, each run's callgrind output is kept there
# (DIR/<bin>.<mode>.<scrapes>) for callgrind_annotate.
set -euo pipefail

n=100
gzip=0
rounds=0
while getopts "n:gc:" o; do
    case $o in
        n) n=$OPTARG ;;
        g) gzip=1 ;;
        c) rounds=$OPTARG ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-n SANDBOXES] [-g] BIN..." >&2; exit 2; }
for t in valgrind curl openssl; do
    command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sim=${KATA_SIM:-$root/target/release/kata-sim}
[ -x "$sim" ] || { echo "no $sim (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d)
sim_pid=""
cleanup() {
    [ -z "$sim_pid" ] || kill "$sim_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A CA, the monitor's certificate (localhost) and Prometheus's.
(
    cd "$work"
    ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    # shellcheck disable=SC2086
    openssl req -x509 $ec -keyout ca.key -out ca.pem -subj /CN=bench-ca -days 2 2>/dev/null
    for who in server client; do
        # shellcheck disable=SC2086
        openssl req $ec -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
        printf 'subjectAltName=DNS:localhost\n' >ext
        openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 2 -extfile ext -out $who.pem 2>/dev/null
    done
)

# The node: kata-sim prints "... dir=D roots=R1,R2 ..." first.
mkfifo "$work/sim.out"
"$sim" --sandboxes "$n" </dev/null >"$work/sim.out" 2>/dev/null &
sim_pid=$!
exec 3<"$work/sim.out"
read -r first <&3
roots=$(printf '%s\n' "$first" | tr ' ' '\n' | sed -n 's/^roots=//p')
# Keep draining its output.
cat <&3 >/dev/null &

port=$((20000 + RANDOM % 20000))

# MODE (http, https, http-gzip, https-gzip) -> the caller's scheme, tls
# (monitor flags), curl_tls and enc (curl flags).
mode_args() {
    scheme=http tls=() curl_tls=() enc=()
    case $1 in
        https*)
            scheme=https
            tls=(--tls-cert-file "$work/server.pem" --tls-key-file "$work/server.key"
                --tls-client-ca-file "$work/ca.pem")
            curl_tls=(--cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key")
            ;;
    esac
    case $1 in *gzip) enc=(-H "Accept-Encoding: gzip") ;; esac
}

# One monitor run: MODE SCRAPES BIN -> total instructions.
run() {
    local mode=$1 scrapes=$2 bin=$3 out="$work/cg.out" scheme tls curl_tls enc
    mode_args "$mode"
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" \
        --listen-address "127.0.0.1:$port" --sandbox-dirs "$roots" \
        --runtime-endpoint "$work/no-cri.sock" --shim-timeout 60s --log-level warn \
        "${tls[@]}" 2>"$work/valgrind.log" &
    local pid=$! urls=()
    for _ in $(seq 600); do
        curl -s -o /dev/null "${curl_tls[@]}" "$scheme://localhost:$port/healthz" && break
        sleep 0.1
    done
    # Warm-up connection above; the measured one below: SCRAPES requests.
    for _ in $(seq "$scrapes"); do urls+=(-o /dev/null "$scheme://localhost:$port/metrics"); done
    curl -sf "${curl_tls[@]}" "${enc[@]}" "${urls[@]}"
    kill -TERM "$pid"
    wait "$pid" || true
    if [ -n "${CALLGRIND_KEEP:-}" ]; then
        cp "$out" "$CALLGRIND_KEEP/$(basename "$bin").$mode.$scrapes"
    fi
    sed -n 's/^summary: //p; s/^totals: //p' "$out" | head -n 1
}

# Native run: MODE BIN -> monitor CPU ns for 30 scrapes (after 3 warm-up
# scrapes on their own connection).
cpu() {
    local mode=$1 bin=$2 scheme tls curl_tls enc urls=() before after
    mode_args "$mode"
    "$bin" --listen-address "127.0.0.1:$port" --sandbox-dirs "$roots" \
        --runtime-endpoint "$work/no-cri.sock" --log-level warn "${tls[@]}" 2>/dev/null &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "${curl_tls[@]}" "$scheme://localhost:$port/healthz" && break
        sleep 0.05
    done
    for _ in 1 2 3; do urls+=(-o /dev/null "$scheme://localhost:$port/metrics"); done
    curl -sf "${curl_tls[@]}" "${enc[@]}" "${urls[@]}"
    urls=()
    for _ in $(seq 30); do urls+=(-o /dev/null "$scheme://localhost:$port/metrics"); done
    read -r before _ </proc/$pid/schedstat
    curl -sf "${curl_tls[@]}" "${enc[@]}" "${urls[@]}"
    read -r after _ </proc/$pid/schedstat
    kill -TERM "$pid"
    wait "$pid" || true
    echo $(((after - before) / 30))
}

modes="http https"
[ "$gzip" = 0 ] || modes="http https http-gzip https-gzip"
if [ "$rounds" -gt 0 ]; then
    for bin in "$@"; do
        declare -A all=()
        for _ in $(seq "$rounds"); do
            for mode in $modes; do
                all[$mode]="${all[$mode]:-} $(cpu "$mode" "$bin")"
            done
        done
        for mode in $modes; do
            # shellcheck disable=SC2086
            med=$(printf '%s\n' ${all[$mode]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
            printf '%s %-10s CPU ms per scrape: median %.2f of%s ns\n' "$bin" "$mode" \
                "$(echo "$med / 1000000" | bc -l)" "${all[$mode]}"
        done
        unset all
    done
    exit 0
fi
for bin in "$@"; do
    declare -A base=()
    for mode in $modes; do
        t2=$(run "$mode" 2 "$bin")
        t12=$(run "$mode" 12 "$bin")
        per=$(((t12 - t2) / 10))
        base[$mode]="$t2 $per"
        printf '%s %-10s per scrape %12d  (total 2: %d, 12: %d)\n' "$bin" "$mode" "$per" "$t2" "$t12"
    done
    for m in "" -gzip; do
        [ -n "${base[https$m]:-}" ] || continue
        read -r h2 hp <<<"${base[http$m]}"
        read -r s2 sp <<<"${base[https$m]}"
        printf '%s https%s/http%s per scrape %.4f; start-up + one handshake + certificate load: %d\n' \
            "$bin" "$m" "$m" "$(echo "$sp / $hp" | bc -l)" $((s2 - h2 - 2 * (sp - hp)))
    done
    unset base
done
