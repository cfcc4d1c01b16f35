# shellcheck shell=bash
# shellcheck disable=SC2034 # the K_* variables are read by the sourcing script
# Sourced (not run) by deploy/build-static.sh and tests/peers/cross-test.sh:
# the architectures Kata ships kata-monitor for, and how each is cross-built
# and run here.
#
#   arch     rust target                     libc            OCI arch  qemu-user
#   x86_64   x86_64-unknown-linux-musl       musl            amd64     (native)
#   aarch64  aarch64-unknown-linux-musl      musl            arm64     qemu-aarch64
#   s390x    s390x-unknown-linux-gnu         glibc, static   s390x     qemu-s390x
#   ppc64le  powerpc64le-unknown-linux-gnu   glibc, static   ppc64le   qemu-ppc64le
#
# rustup has no rust-std for s390x or ppc64le musl, hence static glibc there
# (+crt-static; host names in --listen-address then cannot be resolved in
# the image: use IP literals). Every cross target links with Debian's cross
# gcc (gcc-<triple> + libc6-dev-<arch>-cross); the musl targets use Rust's
# self-contained musl crt and libc.a, gcc only drives the link.
#
# kata_target ARCH sets: K_ARCH, K_TARGET, K_OCI_ARCH, K_LINKER (empty when
# native), K_QEMU (empty when native), K_LINKER_PKGS (Debian packages), and
# exports CARGO_TARGET_<T>_LINKER, CARGO_TARGET_<T>_RUSTFLAGS (the static
# flags, for the target crates only: build scripts and proc-macros stay
# ordinary host binaries) and CARGO_TARGET_<T>_RUNNER (qemu for `cargo test`).
# Returns non-zero for an unknown ARCH.

KATA_ARCHES="x86_64 aarch64 s390x ppc64le"

kata_host_arch() {
    uname -m
}

kata_target() {
    K_ARCH=$1
    case "$K_ARCH" in
        x86_64 | amd64)
            K_ARCH=x86_64 K_TARGET=x86_64-unknown-linux-musl K_OCI_ARCH=amd64
            K_GNU=x86_64-linux-gnu K_QEMU=qemu-x86_64 K_LINKER_PKGS="gcc-x86-64-linux-gnu libc6-dev-amd64-cross"
            ;;
        aarch64 | arm64)
            K_ARCH=aarch64 K_TARGET=aarch64-unknown-linux-musl K_OCI_ARCH=arm64
            K_GNU=aarch64-linux-gnu K_QEMU=qemu-aarch64 K_LINKER_PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
            ;;
        s390x)
            K_TARGET=s390x-unknown-linux-gnu K_OCI_ARCH=s390x
            K_GNU=s390x-linux-gnu K_QEMU=qemu-s390x K_LINKER_PKGS="gcc-s390x-linux-gnu libc6-dev-s390x-cross"
            ;;
        ppc64le | powerpc64le)
            K_ARCH=ppc64le K_TARGET=powerpc64le-unknown-linux-gnu K_OCI_ARCH=ppc64le
            K_GNU=powerpc64le-linux-gnu K_QEMU=qemu-ppc64le K_LINKER_PKGS="gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross"
            ;;
        *)
            echo "unknown architecture '$1' (want one of: $KATA_ARCHES)" >&2
            return 1
            ;;
    esac
    local var
    var=$(printf '%s' "$K_TARGET" | tr 'a-z-' 'A-Z_')
    # C code (libzstd, built by zstd-sys through the cc crate) is compiled by
    # the same gcc that links: cc would otherwise look for a
    # <arch>-linux-musl-gcc that Debian does not ship. libzstd needs only
    # memcpy/memset/malloc from the C library, so glibc's headers serve musl.
    local cvar
    cvar=$(printf '%s' "$K_TARGET" | tr '-' '_')
    if [ "$K_ARCH" = "$(kata_host_arch)" ]; then
        # Native: the host's cc links, the binary runs as is.
        K_LINKER="" K_QEMU="" K_LINKER_PKGS=""
        export "CC_${cvar}=cc" "AR_${cvar}=ar"
    else
        K_LINKER="$K_GNU-gcc"
        export "CARGO_TARGET_${var}_LINKER=$K_LINKER"
        export "CARGO_TARGET_${var}_RUNNER=$K_QEMU"
        export "CC_${cvar}=$K_LINKER" "AR_${cvar}=$K_GNU-ar"
    fi
    export "CARGO_TARGET_${var}_RUSTFLAGS=-C target-feature=+crt-static"
    # ring (the TLS crypto) compiles C and assembly for the target with
    # cc-rs, which looks for <arch>-linux-musl-gcc on a musl target: Debian
    # ships none. The gnu cross gcc (the host's cc when native) builds
    # ring's freestanding code; rustc links it with musl. A caller's CC_<t>
    # and AR_<t> win.
    local tvar ccvar
    tvar=$(printf '%s' "$K_TARGET" | tr '-' '_')
    ccvar="CC_${tvar}"
    if [ -z "${!ccvar:-}" ]; then
        export "CC_${tvar}=${K_LINKER:-cc}"
        [ -z "$K_LINKER" ] || export "AR_${tvar}=$K_GNU-ar"
    fi
    return 0
}
