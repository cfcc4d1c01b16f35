#!/usr/bin/env bash
# Runs the library's unit tests and the exposition engine's property, merge,
# golden and fuzz-corpus tests for foreign architectures under qemu-user:
#
#   tests/peers/cross-test.sh aarch64 s390x ppc64le    # or: all
#
# Each target is cross-built with Debian's cross gcc (deploy/targets.sh) and
# its test binaries are run by cargo through CARGO_TARGET_<T>_RUNNER=qemu-<arch>.
# The host's own architecture is skipped (`cargo test --release` covers it).
# s390x is big-endian: tests/golden.rs checks the merged output byte for byte
# against upstream's, and tests/static_arches.rs compares a whole /metrics
# answer of each static binary with the host's.
#
# Profile: the test profile at opt-level 1 without debug info. Measured on
# s390x (2 shared cores): debug builds in ~2.7 min and its tests run 3.2 min
# under qemu (the proptest-heavy ones dominate); opt-level 1 builds in about
# the same CPU time and runs them in 43 s.
#
# Skipped test: daemon::procfs::tests::reads_this_process. qemu-user answers
# /proc/self/stat with a synthesized line whose rss, vsize and state are 0,
# so that test of the host kernel's procfs cannot hold under emulation.
#
# Needs: rustup targets (deploy/targets.sh lists them), the cross gcc
# packages, qemu-user. Builds run one target at a time.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=deploy/targets.sh
. deploy/targets.sh

arches=("$@")
[ ${#arches[@]} -gt 0 ] || { echo "usage: $0 ARCH... | all" >&2; exit 2; }
[ "${arches[*]}" != all ] || read -r -a arches <<<"$KATA_ARCHES"

export CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_PROFILE_DEV_DEBUG=0
for a in "${arches[@]}"; do
    kata_target "$a"
    if [ -z "$K_QEMU" ]; then
        echo "cross-test: $K_ARCH is the host; covered by cargo test --release" >&2
        continue
    fi
    for tool in "$K_LINKER" "$K_QEMU"; do
        command -v "$tool" >/dev/null || {
            echo "cross-test: $tool not found (apt-get install qemu-user $K_LINKER_PKGS)" >&2
            exit 1
        }
    done
    start=$(date +%s)
    echo "cross-test: $K_ARCH ($K_TARGET) under $K_QEMU" >&2
    cargo test --target "$K_TARGET" --no-run --lib \
        --test golden --test engine_merge --test engine_props --test fuzz_corpus
    built=$(date +%s)
    cargo test --target "$K_TARGET" --no-fail-fast --lib \
        --test golden --test engine_merge --test engine_props --test fuzz_corpus \
        -- --skip daemon::procfs::tests::reads_this_process
    echo "cross-test: $K_ARCH: build $((built - start)) s, tests $(($(date +%s) - built)) s" >&2
done
