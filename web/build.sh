#!/usr/bin/env bash
# Builds the browser inspector into web/dist/: the core compiled to wasm32 with its
# wasm-bindgen bindings (host-wasm), plus the static page. Any static file server can host
# dist/ (e.g. `python3 -m http.server -d web/dist`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
# wasm-bindgen-cli must equal the wasm-bindgen crate version pinned in host-wasm/Cargo.toml.
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' host-wasm/Cargo.toml)
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | cut -d' ' -f2)" != "$want" ]; then
    echo "web/build.sh: cargo install wasm-bindgen-cli --version $want (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$want" --quiet
fi
cargo build -p nydus-host-wasm --target wasm32-unknown-unknown --release --locked
rm -rf web/dist.tmp
mkdir -p web/dist.tmp/pkg
wasm-bindgen --target web --no-typescript --out-dir web/dist.tmp/pkg \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/nydus_host_wasm.wasm"
cp web/index.html web/app.js web/worker.js web/style.css web/dist.tmp/
rm -rf web/dist
mv web/dist.tmp web/dist
printf 'web/dist built: nydus_host_wasm_bg.wasm is %d bytes\n' "$(stat -c %s web/dist/pkg/nydus_host_wasm_bg.wasm)"
