#!/usr/bin/env bash
# Installs what a bare Debian machine with a rustup toolchain lacks. Idempotent: already-present
# tools are skipped.
#
# usage: scripts/install-deps.sh               everything the build, the tests and the
#                                              benchmarks need (scripts/test.sh)
#        scripts/install-deps.sh --quickstart  only what scripts/quickstart.sh's journey needs:
#                                              a C compiler for the build, docker-registry,
#                                              umoci and skopeo (the FUSE mount is pure Rust:
#                                              no libfuse, no fusermount3)
set -euo pipefail

case "${1:-}" in
    "") quickstart=0 ;;
    --quickstart) quickstart=1 ;;
    *) echo "usage: $0 [--quickstart]" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if [ "${#need_apt[@]}" -gt 0 ]; then
        echo "install-deps: apt-get install ${need_apt[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
}

# The quickstart's journey: the loopback registry, and the image built and pushed into it.
have umoci || need_apt+=(umoci)
have skopeo || need_apt+=(skopeo)
have docker-registry || need_apt+=(docker-registry)
if [ "$quickstart" = 1 ]; then
    # rustc links with cc; zstd-sys and ring compile their C with it (the full set below
    # takes the toolchain's cc as given).
    have cc || need_apt+=(gcc)
    apt_install
    exit 0
fi

# Only the tests and the benchmarks need the rest.
have fsck.erofs || need_apt+=(erofs-utils)
have fusermount3 || need_apt+=(fuse3)
have setfattr || need_apt+=(attr)
have zstd || need_apt+=(zstd)
have clang || need_apt+=(clang)
# libz-sys (zlib-ng, pulled in by upstream's nydus-rafs, the test oracle) builds with cmake.
have cmake || need_apt+=(cmake)
have node || need_apt+=(nodejs)
have debootstrap || need_apt+=(debootstrap)
[ -x /usr/bin/time ] || need_apt+=(time)
have mkfs.erofs || need_apt+=(erofs-utils)
have perl || need_apt+=(perl)
have bc || need_apt+=(bc)
# nydusify commit's tests: containerd + runc run the container; containerd-client's build
# compiles containerd's protos with protoc; the test image is busybox.
have containerd || need_apt+=(containerd)
have runc || need_apt+=(runc)
have protoc || need_apt+=(protobuf-compiler)
# The eStargz tests make real eStargz layers with stargz-snapshotter's ctr-remote.
have ctr-remote || need_apt+=(stargz-snapshotter)
# (static: the container has no libc; ldd fails on a static binary)
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then need_apt+=(busybox-static); fi
have chromium || need_apt+=(chromium)
have htpasswd || need_apt+=(apache2-utils)
# The trust test adds its CA to the system store.
have update-ca-certificates || need_apt+=(ca-certificates)
have npm || need_apt+=(npm)
# The example hook plugins are built for wasm32-wasip1; the C of zstd in the core compiles
# against WASI's libc headers.
[ -d /usr/include/wasm32-wasi ] || need_apt+=(wasi-libc)
apt_install

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "install-deps: rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi
if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    echo "install-deps: rustup target add wasm32-wasip1"
    rustup target add wasm32-wasip1
fi
if ! have cargo-fuzz && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
    echo "install-deps: cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

BROWSER_TESTS="$(cd "$(dirname "$0")/../tests/browser" && pwd)"
if [ ! -d "$BROWSER_TESTS/node_modules/playwright-core" ]; then
    echo "install-deps: npm ci (playwright-core, drives Debian's chromium)"
    (cd "$BROWSER_TESTS" && npm ci --no-audit --no-fund --silent)
fi

# The S3 server the backend tests and bench/backends.sh run against (verifies SigV4).
if ! have s3s-fs && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
    echo "install-deps: cargo install s3s-fs 0.14.1"
    # Without --locked where the lock pins a version the registry mirror lacks.
    cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet \
        || cargo install s3s-fs --version 0.14.1 --features binary --quiet
fi
# The AWS CLI (the benchmark's peer), botocore and Alibaba's oss2 (the reference signers of
# tests/sign_vectors.py).
need_pip=()
python3 -c "import botocore" 2>/dev/null || need_pip+=(botocore)
python3 -c "import oss2" 2>/dev/null || need_pip+=(oss2)
have aws || need_pip+=(awscli)
if [ "${#need_pip[@]}" -gt 0 ]; then
    echo "install-deps: pip install ${need_pip[*]}"
    python3 -m pip install --quiet "${need_pip[@]}"
fi
