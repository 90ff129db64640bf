#!/usr/bin/env bash
# Benchmark of the browser inspector: time for headless chromium to open a bootstrap of 100k
# inodes and list its root (target < 1 s), and the size of the .wasm. Builds web/dist first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
bash web/build.sh >/dev/null
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
NI="$CARGO_TARGET_DIR/release/nydus-image"
W=$(mktemp -d /var/tmp/nydus-inspector-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
# 100 directories x 1000 small files, as one tar layer.
python3 - "$W/big.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for d in range(100):
        i = tarfile.TarInfo(f"d{d:03}"); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
        for f in range(1000):
            data = f"{d}/{f}\n".encode()
            i = tarfile.TarInfo(f"d{d:03}/f{f:04}"); i.size = len(data); t.addfile(i, io.BytesIO(data))
PY
"$NI" create -t tar-rafs -B "$W/big.boot" -D "$W" "$W/big.tar" >/dev/null
inodes=$("$NI" inspect -B "$W/big.boot" -R stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["inodes"])')
printf '[{"name": "open-%s-inodes", "boot": "%s", "blobs": [], "bench": true}]' "$inodes" "$W/big.boot" >"$W/cases.json"
printf 'bootstrap: %s inodes, %d bytes\n' "$inodes" "$(stat -c %s "$W/big.boot")"
for run in 1 2 3; do
    node tests/browser/inspect.mjs web/dist "$W/cases.json" "$W/artifacts" | grep '^bench'
done
printf 'wasm: %d bytes (%d gzip)\n' "$(stat -c %s web/dist/pkg/nydus_host_wasm_bg.wasm)" "$(gzip -9c web/dist/pkg/nydus_host_wasm_bg.wasm | wc -c)"
