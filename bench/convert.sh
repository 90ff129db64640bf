#!/usr/bin/env bash
# Benchmark of `nydusify convert` between two loopback docker-registry instances, next to
# `skopeo copy` of the same image between the same two registries in the same run, plain and
# recompressing to zstd (the same kind of work: gunzip + zstd of every byte) (the target
# registry is emptied before every run so nothing is skipped or mounted). The image is a
# `debootstrap --variant=minbase` rootfs as one gzip layer, built by umoci and pushed by skopeo.
# Prints wall time, source MB/s and peak RSS (best of $RUNS runs).
#
# usage: bench/convert.sh [ROOTFS]   default: /var/tmp/nydus-bench/rootfs (made by create.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
RUNS="${RUNS:-3}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
NY="$CARGO_TARGET_DIR/release/nydusify"
for tool in docker-registry umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)"; exit 1; }
done
TREE="${1:-/var/tmp/nydus-bench/rootfs}"
[ -d "$TREE" ] || { echo "no rootfs at $TREE: run bench/create.sh first (it makes one)"; exit 1; }

W=$(mktemp -d /var/tmp/nydus-bench-convert.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_registry() { # name -> sets REG (host:port) and REG_PID
    local name=$1 port
    port=$(free_port)
    rm -rf "$W/$name" && mkdir -p "$W/$name"
    cat >"$W/$name.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/$name
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$W/$name.yml" >/dev/null 2>&1 &
    REG_PID=$!
    PIDS+=("$REG_PID")
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    REG="127.0.0.1:$port"
}

start_registry src
SRC=$REG
echo "building the source image from $TREE ..."
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:img" >/dev/null
umoci unpack --image "$W/oci:img" "$W/bundle" >/dev/null
cp -a "$TREE/." "$W/bundle/rootfs/"
umoci repack --image "$W/oci:img" "$W/bundle" >/dev/null
rm -rf "$W/bundle"
skopeo copy --dest-tls-verify=false "oci:$W/oci:img" "docker://$SRC/deb/minbase:oci" >/dev/null
layer_bytes=$(du -sb "$W/oci/blobs" | cut -f1)
rm -rf "$W/oci"
printf 'image: %s entries, %.1f MB compressed in the source registry; %s cores\n\n' \
    "$(find "$TREE" | wc -l)" "$(echo "$layer_bytes/1000000" | bc -l)" "$(nproc)"
printf '%-40s %8s %9s %10s\n' tool "wall s" "MB/s" "RSS MiB"

measure() { # name, command (with @DST@ for the target registry)...
    local name=$1; shift
    local best="" rss=0
    for _ in $(seq "$RUNS"); do
        start_registry dst
        local cmd=("${@//@DST@/$REG}")
        /usr/bin/time -f "%e %M" -o "$W/time" "${cmd[@]}" >/dev/null 2>"$W/err" || { echo "$name failed:"; cat "$W/err"; return 1; }
        kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
        read -r wall kb <"$W/time"
        if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc)" = 1 ]; then best=$wall; rss=$kb; fi
    done
    printf '%-40s %8.2f %9.1f %10.1f\n' "$name" "$best" "$(echo "$layer_bytes/1000000/$best" | bc -l)" "$(echo "$rss/1024" | bc -l)"
    LAST=$best
}

measure "skopeo copy (registry -> registry)" skopeo copy --src-tls-verify=false --dest-tls-verify=false \
    "docker://$SRC/deb/minbase:oci" "docker://@DST@/deb/minbase:oci"
SKOPEO=$LAST
measure "skopeo copy --dest-compress-format zstd" skopeo copy --src-tls-verify=false --dest-tls-verify=false \
    --dest-compress-format zstd "docker://$SRC/deb/minbase:oci" "docker://@DST@/deb/minbase:zstd"
measure "ours: nydusify convert (v6 zstd)" "$NY" convert --source "$SRC/deb/minbase:oci" \
    --target "@DST@/deb/minbase:nydus" --plain-http --work-dir "$W/work" --log-level warn
printf '\nconvert / skopeo copy: %.2fx (target: at most 1.3x)\n' "$(echo "$LAST/$SKOPEO" | bc -l)"
