#!/usr/bin/env bash
# What a hook plugin costs a conversion: `nydusify convert` of a debootstrap rootfs (one gzip
# layer in a loopback docker-registry) without plugins, with the two example plugins (policy:
# nydus-core walking the bootstrap inside wasmtime; bookkeeping) on a fresh work directory
# (modules compiled), and again with the compiled modules cached in the work directory. Prints
# the wall time of each (median of $RUNS) and, from the debug log, each plugin's load time and
# each hook run's time. Target: under 50 ms per hook after the first compile.
#
# usage: bench/hooks.sh [ROOTFS]   default: /var/tmp/nydus-bench/rootfs (made by create.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
RUNS="${RUNS:-3}"
TREE="${1:-/var/tmp/nydus-bench/rootfs}"
[ -d "$TREE" ] || { echo "no rootfs at $TREE: run bench/create.sh first (it makes one)"; exit 1; }
for tool in docker-registry umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)"; exit 1; }
done
[ -d /usr/include/wasm32-wasi ] || { echo "missing WASI headers (apt-get install wasi-libc)"; exit 1; }
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
NY="$CARGO_TARGET_DIR/release/nydusify"
PT="$CARGO_TARGET_DIR/wasm-plugins"
mkdir -p "$PT/wasi-sysroot"
ln -sfn /usr/include/wasm32-wasi "$PT/wasi-sysroot/include"
CARGO_TARGET_DIR="$PT" CFLAGS_wasm32_wasip1="--sysroot=$PT/wasi-sysroot" \
    cargo build --release --locked --target wasm32-wasip1 -p nydus-plugin-policy -p nydus-plugin-bookkeeping >/dev/null 2>&1
W=$(mktemp -d /var/tmp/nydus-bench-hooks.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
cp "$PT/wasm32-wasip1/release/policy.wasm" "$PT/wasm32-wasip1/release/bookkeeping.wasm" "$W/"
# Debian's rootfs has setuid-root programs (su, passwd, mount): allowed here, or the hook rejects.
echo '{"max_file_size": 1000000000, "allow_setuid_root": true}' >"$W/policy.json"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/reg"
cat >"$W/reg.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/reg
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$W/reg.yml" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
REG="127.0.0.1:$port"
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:img" >/dev/null
umoci unpack --image "$W/oci:img" "$W/bundle" >/dev/null
cp -a "$TREE/." "$W/bundle/rootfs/"
umoci repack --image "$W/oci:img" "$W/bundle" >/dev/null
rm -rf "$W/bundle"
skopeo copy --dest-tls-verify=false "oci:$W/oci:img" "docker://$REG/deb/minbase:oci" >/dev/null
rm -rf "$W/oci"
printf 'image: %s entries; %s cores; wasmtime 48, cranelift\n\n' "$(find "$TREE" | wc -l)" "$(nproc)"

convert() { # work dir, log file, extra args...
    local work=$1 log=$2; shift 2
    /usr/bin/time -f "%e" -o "$W/time" "$NY" -l debug convert --source "$REG/deb/minbase:oci" \
        --target "$REG/deb/minbase:nydus" --plain-http --work-dir "$work" "$@" 2>"$log" >/dev/null \
        || { echo "convert failed:" >&2; tail -20 "$log" >&2; exit 1; }
    cat "$W/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
PLUGINS=(--hook-plugin "$W/policy.wasm" --hook-plugin "$W/bookkeeping.wasm")
# One conversion first, so that every measured one finds the blobs already pushed.
convert "$W/warmup" "$W/warmup.log" >/dev/null
: >"$W/none"; : >"$W/cold"; : >"$W/warm"
for i in $(seq "$RUNS"); do
    convert "$W/w-none-$i" "$W/none-$i.log" >>"$W/none"
    convert "$W/w-hooks-$i" "$W/cold-$i.log" "${PLUGINS[@]}" >>"$W/cold"
    convert "$W/w-hooks-$i" "$W/warm-$i.log" "${PLUGINS[@]}" >>"$W/warm"
done
printf '%-46s %8s\n' "conversion" "wall s"
printf '%-46s %8.2f\n' "no plugins" "$(median <"$W/none")"
printf '%-46s %8.2f\n' "2 plugins, fresh work dir (compiled)" "$(median <"$W/cold")"
printf '%-46s %8.2f\n' "2 plugins, compiled modules cached" "$(median <"$W/warm")"
ms() { # a Duration as printed by Rust's Debug ("12.3ms", "1.2s", "850µs") -> milliseconds
    awk '{v=$1; if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /µs$/) {sub(/µs$/,"",v); print v/1000} else if (v ~ /ns$/) {sub(/ns$/,"",v); print v/1000000} else {sub(/s$/,"",v); print v*1000}}'
}
echo
printf '%-46s %10s %10s\n' "per plugin (median of $RUNS)" "cold ms" "cached ms"
for p in policy bookkeeping; do
    for kind in load before_push_manifest after_push_manifest; do
        for run in cold warm; do
            : >"$W/$run.$p.$kind"
            for i in $(seq "$RUNS"); do
                if [ "$kind" = load ]; then
                    grep -a "hook plugin $W/$p.wasm: loaded in " "$W/$run-$i.log" | sed 's/.*loaded in //'
                else
                    grep -a "hook plugin $p ($kind): " "$W/$run-$i.log" | sed 's/.*): //; s/,.*//'
                fi | ms >>"$W/$run.$p.$kind"
            done
        done
        printf '%-46s %10.1f %10.1f\n' "$p: $kind" "$(median <"$W/cold.$p.$kind")" "$(median <"$W/warm.$p.$kind")"
    done
done
fuel=$(grep -a "hook plugin policy (before_push_manifest)" "$W/warm-1.log" | sed 's/.*, //')
echo
echo "policy's walk of the bootstrap: $fuel"
