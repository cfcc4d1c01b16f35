#!/usr/bin/env bash
# Builds fully static release kata-monitor binaries, one per architecture Kata
# ships, and checks each (what deploy/mkimage.py puts into the image).
#
#   deploy/build-static.sh              # the host's architecture
#   deploy/build-static.sh all          # x86_64 aarch64 s390x ppc64le
#   deploy/build-static.sh aarch64 s390x
#
# Output: target/static/<arch>/kata-monitor; the host architecture's is also
# copied to target/static/kata-monitor. Targets and linkers: deploy/targets.sh
# (musl for x86_64 and aarch64, static glibc for s390x and ppc64le; cross
# linkers from Debian: apt-get install gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross gcc-s390x-linux-gnu libc6-dev-s390x-cross
# gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross, and rustup target add
# for each rust target). The explicit --target matters: the static flags then
# reach the target crates only, so build scripts and proc-macros stay
# ordinary dynamic host binaries (a static proc-macro cannot be loaded).
# On the host, when the musl target is not installed, the host's gnu target
# with +crt-static is used instead.
#
# The git commit is embedded through KATA_MONITOR_COMMIT (read with
# option_env! by the crate); set it beforehand to override.
#
# Exits non-zero if a build fails, if readelf finds a program interpreter or
# a needed shared library, if `file` does not report a static executable,
# or if `kata-monitor version` does not run (under qemu-user for foreign
# architectures; set KATA_MONITOR_NO_RUN=1 to skip that where qemu-user is
# missing). Builds run one after the other (each is an LTO build that uses
# every core).
set -euo pipefail

die() { echo "build-static: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

command -v cargo >/dev/null || die "cargo not found"
command -v rustc >/dev/null || die "rustc not found"

# shellcheck source=deploy/targets.sh
. "$root/deploy/targets.sh"

installed=""
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed 2>/dev/null || true)
fi

: "${KATA_MONITOR_COMMIT:=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
export KATA_MONITOR_COMMIT

# Where cargo puts artifacts (honours CARGO_TARGET_DIR and .cargo/config).
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=${CARGO_TARGET_DIR:-$root/target}

build_one() {
    local arch target built out_dir out strip_tool needed file_out version_out size var
    kata_target "$1" || die "unknown architecture $1"
    arch=$K_ARCH
    target=$K_TARGET
    # (Without rustup the list is empty: just try.)
    if [ -n "$installed" ] && ! printf '%s\n' "$installed" | grep -qx "$target"; then
        if [ -z "$K_LINKER" ]; then
            # Host without its musl target: static glibc instead.
            target=$(rustc -vV | sed -n 's/^host: //p')
            case "$target" in
                *-linux-gnu*) ;;
                *) die "host $target is not a linux-gnu target and $K_TARGET is not installed" ;;
            esac
            var=$(printf '%s' "$target" | tr 'a-z-' 'A-Z_')
            export "CARGO_TARGET_${var}_RUSTFLAGS=-C target-feature=+crt-static"
        else
            die "rust target $target not installed (rustup target add $target)"
        fi
    fi
    if [ -n "$K_LINKER" ]; then
        command -v "$K_LINKER" >/dev/null ||
            die "$K_LINKER not found (apt-get install $K_LINKER_PKGS)"
    fi
    echo "build-static: $arch: target $target, linker ${K_LINKER:-cc}, commit $KATA_MONITOR_COMMIT" >&2
    cargo build --release --target "$target" --bin kata-monitor >&2 ||
        die "cargo build failed"

    built="$target_dir/$target/release/kata-monitor"
    [ -x "$built" ] || die "no binary at $built"

    out_dir="$root/target/static/$arch"
    out="$out_dir/kata-monitor"
    mkdir -p "$out_dir"
    cp -f "$built" "$out.tmp"
    # The release profile already strips; strip again in case a caller's profile
    # override did not (harmless on a stripped binary).
    strip_tool="strip"
    [ -z "$K_LINKER" ] || strip_tool="$K_GNU-strip"
    if command -v "$strip_tool" >/dev/null; then
        "$strip_tool" "$out.tmp" 2>/dev/null || true
    fi
    mv -f "$out.tmp" "$out"

    # Static checks, for any architecture: no program interpreter (PT_INTERP)
    # and no needed shared library (DT_NEEDED).
    command -v readelf >/dev/null || die "readelf not found (binutils)"
    readelf -lW "$out" | grep -q 'Requesting program interpreter' &&
        die "readelf: $out has a program interpreter"
    needed=$(readelf -dW "$out" | grep '(NEEDED)' || true)
    [ -z "$needed" ] || die "readelf: $out needs shared libraries: $needed"
    if command -v file >/dev/null; then
        file_out=$(file -b "$out")
        case "$file_out" in
            *"statically linked"* | *"static-pie linked"*) ;;
            *) die "file: $out is not static: $file_out" ;;
        esac
        case "$file_out" in
            *"dynamically linked"* | *"interpreter "*) die "file: $out has an interpreter: $file_out" ;;
        esac
    else
        file_out="(file not installed)"
    fi

    # It must run: `version` touches neither the network nor the sockets.
    if [ "${KATA_MONITOR_NO_RUN:-0}" = 1 ]; then
        version_out="(not run: KATA_MONITOR_NO_RUN=1)"
    else
        if [ -n "$K_QEMU" ]; then
            command -v "$K_QEMU" >/dev/null ||
                die "$K_QEMU not found (apt-get install qemu-user), or set KATA_MONITOR_NO_RUN=1"
        fi
        # shellcheck disable=SC2086 # K_QEMU is empty or one word
        version_out=$(env -i $K_QEMU "$out" version 2>&1) || die "$out version failed: $version_out"
        case "$version_out" in
            *kata-monitor*"$KATA_MONITOR_COMMIT"*) ;;
            *) die "unexpected version output: $version_out" ;;
        esac
    fi

    size=$(stat -c %s "$out")
    echo "arch: $arch ($target)"
    echo "file: $file_out"
    printf '%s\n' "$version_out"
    echo "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }'))"
    if [ "$arch" = "$(kata_host_arch)" ]; then
        cp -f "$out" "$root/target/static/kata-monitor.tmp"
        mv -f "$root/target/static/kata-monitor.tmp" "$root/target/static/kata-monitor"
    fi
    echo "$out"
}

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=("$(kata_host_arch)")
[ "${arches[*]}" != all ] || read -r -a arches <<<"$KATA_ARCHES"
for a in "${arches[@]}"; do
    build_one "$a"
done
