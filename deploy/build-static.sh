#!/usr/bin/env bash
# Builds a fully static release kata-monitor and copies it to
# target/static/kata-monitor (what deploy/Dockerfile copies into a scratch image).
#
#   deploy/build-static.sh          # from anywhere inside the repository
#
# Target choice:
#   * <arch>-unknown-linux-musl when rustup has it installed
#     (rustup target add x86_64-unknown-linux-musl);
#   * otherwise the host's gnu target with -C target-feature=+crt-static. The
#     explicit --target matters: with it RUSTFLAGS only reaches the target
#     crates, so build scripts and proc-macros stay ordinary dynamic host
#     binaries (a static proc-macro cannot be loaded by rustc).
#     A static glibc binary cannot load NSS modules, so host names given to
#     --listen-address are not resolved in a scratch image: use IP literals
#     (0.0.0.0:8090, 127.0.0.1:8090, [::]:8090), as every manifest here does.
#
# The git commit is embedded through KATA_MONITOR_COMMIT (read with
# option_env! by the crate); set it beforehand to override.
#
# Exits non-zero if the build fails, if ldd or file do not report a static
# executable, or if `kata-monitor version` does not run.
set -euo pipefail

die() { echo "build-static: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

command -v cargo >/dev/null || die "cargo not found"
command -v rustc >/dev/null || die "rustc not found"

host=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$host" ] || die "cannot read the host triple from rustc -vV"
arch=${host%%-*}
musl="${arch}-unknown-linux-musl"

installed=""
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed 2>/dev/null || true)
fi

if printf '%s\n' "$installed" | grep -qx "$musl"; then
    target=$musl
    # musl targets link statically by default; say so anyway.
    rustflags="-C target-feature=+crt-static"
else
    case "$host" in
        *-linux-gnu*) ;;
        *) die "host $host is not a linux-gnu target and $musl is not installed" ;;
    esac
    target=$host
    rustflags="-C target-feature=+crt-static"
fi
# Keep any flags the caller set.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$rustflags"
# ring (the TLS crypto) compiles C and assembly for the target. For a musl
# target cc-rs looks for <arch>-linux-musl-gcc, which Debian does not ship;
# the host gcc builds ring's freestanding code for it (rustc links with musl).
cc_var="CC_$(printf '%s' "$target" | tr '-' '_')"
if [ -z "${!cc_var:-}" ] && [ "$target" = "$musl" ]; then
    export "$cc_var=${CC:-cc}"
fi

: "${KATA_MONITOR_COMMIT:=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
export KATA_MONITOR_COMMIT

# Where cargo puts artifacts (honours CARGO_TARGET_DIR and .cargo/config).
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=${CARGO_TARGET_DIR:-$root/target}

echo "build-static: target $target, RUSTFLAGS='$RUSTFLAGS', commit $KATA_MONITOR_COMMIT" >&2
cargo build --release --target "$target" --bin kata-monitor >&2 ||
    die "cargo build failed"

built="$target_dir/$target/release/kata-monitor"
[ -x "$built" ] || die "no binary at $built"

out_dir="$root/target/static"
out="$out_dir/kata-monitor"
mkdir -p "$out_dir"
cp -f "$built" "$out.tmp"
# The release profile already strips; strip again in case a caller's profile
# override did not (harmless on a stripped binary).
if command -v strip >/dev/null; then
    strip "$out.tmp" 2>/dev/null || true
fi
mv -f "$out.tmp" "$out"

# Static checks. glibc's ldd says "not a dynamic executable" for a static
# binary and "statically linked" for a static-pie one; anything listing
# libraries (or "=>") is a dynamic binary.
ldd_out=$(ldd "$out" 2>&1 || true)
case "$ldd_out" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) die "ldd: $out is dynamically linked: $ldd_out" ;;
esac
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
version_out=$(env -i "$out" version 2>&1) || die "$out version failed: $version_out"
case "$version_out" in
    *kata-monitor*"$KATA_MONITOR_COMMIT"*) ;;
    *) die "unexpected version output: $version_out" ;;
esac

size=$(stat -c %s "$out")
echo "ldd:  $ldd_out"
echo "file: $file_out"
printf '%s\n' "$version_out"
echo "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }'))"
echo "$out"
