#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy (native and wasm32, which enforces the
# core's sans-IO rules), the whole test suite (unit, golden vectors, end-to-end against the
# kernel's EROFS driver, erofs-utils and upstream's nydus-rafs reader), the golden vectors in
# WASM under Node, the browser inspector in headless chromium, and a short run of every fuzz
# target. Needs root (mount, mknod).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { echo; echo "=== $* ==="; }

step "dependencies"
bash scripts/install-deps.sh

step "format"
cargo fmt --all --check

step "clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "clippy (core for wasm32: no OS services)"
cargo clippy -p nydus-core --target wasm32-unknown-unknown --locked -- -D warnings
cargo clippy -p nydus-host-wasm --target wasm32-unknown-unknown --locked -- -D warnings

step "docs (the libraries' API, warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked

step "browser inspector (web/build.sh: the core in WASM + the page, into web/dist)"
bash web/build.sh

step "build"
cargo build --release --workspace --locked

step "tests"
cargo test --release --workspace --locked

step "golden vectors in WASM"
cargo build -p nydus-wasm-golden --target wasm32-unknown-unknown --release --locked
node tests/wasm-golden/run.mjs "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/nydus_wasm_golden.wasm"

step "fuzz targets (build and a short run from the golden seeds)"
(
    cd fuzz
    export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"
    # Stable toolchain with unstable flags enabled: a fresh machine has only stable.
    export RUSTC_BOOTSTRAP=1
    cargo +stable fuzz build -O
    seeds=$(mktemp -d)
    trap 'rm -rf "$seeds"' EXIT
    cp ../core/tests/golden/*.boot ../core/tests/golden/upstream/* "$seeds/"
    rm -f "$seeds/README.md"
    for t in bootstrap bootstrap_v5 blob tar_layer oci_image read_plan stargz_toc; do
        if [ -d "regressions/$t" ]; then cp "regressions/$t"/* "$seeds/"; fi
        if ! cargo +stable fuzz run -O "$t" "$seeds" -- -max_total_time=20 -rss_limit_mb=1024 >"$seeds/$t.log" 2>&1; then
            tail -40 "$seeds/$t.log"
            echo "fuzz target $t failed (reproducer under fuzz/artifacts/$t/)"
            exit 1
        fi
        echo "fuzz $t: $(grep -a '^Done' "$seeds/$t.log")"
    done
)

echo
echo "all checks passed"
