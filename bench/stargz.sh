#!/usr/bin/env bash
# Benchmark of images that reference eStargz layers: the debootstrap rootfs of bench/create.sh
# as an OCI image in a loopback docker-registry; stargz-snapshotter's ctr-remote converts it to
# eStargz (against a containerd of its own); then, in the same run:
#   - building the bootstrap from the eStargz layer (`nydus-image create -t estargztoc-ref`,
#     ours: no data written) vs converting the OCI image (`nydusify convert`, all data
#     recompressed and pushed) vs copying it (`skopeo copy`);
#   - a cold read-all (empty blob cache, page cache dropped) through the `nydusd` entry of the
#     eStargz-referencing image (every chunk inflated from the layer's gzip members) vs the
#     same tree built as a Nydus blob (zstd), both from a localfs directory;
#     with UPSTREAM_NYDUSD=<path> (built outside the repo) also upstream nydusd reading the
#     same eStargz image (its work directory holding the `.blob.meta` we write).
# Figures: wall seconds and peak RSS, bytes written.
#
# usage: bench/stargz.sh [TREE]  (needs root, docker-registry, umoci, skopeo, containerd,
#                                 ctr-remote; FUSE)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
BIN="$CARGO_TARGET_DIR/release"
for tool in docker-registry umoci skopeo containerd ctr-remote; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash scripts/install-deps.sh)"; exit 1; }
done
TREE="${1:-/var/tmp/nydus-bench/rootfs}"
[ -d "$TREE" ] || { echo "no rootfs at $TREE: run bench/create.sh first (it makes one)"; exit 1; }

W=$(mktemp -d /var/tmp/nydus-bench-stargz.XXXXXX)
PIDS=()
SOCK="$W/c.sock"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    grep -o " $W[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/reg"
cat >"$W/reg.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/reg
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
REG="127.0.0.1:$port"
cat >"$W/containerd.toml" <<EOF
version = 2
root = "$W/croot"
state = "$W/cstate"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$W/t.sock"
EOF
containerd --config "$W/containerd.toml" >"$W/containerd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do ctr-remote --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done

timed() { # label, command...: wall seconds and peak RSS
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>"$W/cmd.log" || { cat "$W/cmd.log" >&2; exit 1; }
    read -r secs kb <"$W/time"
    printf '%-58s %8.2f s %8.1f MiB\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)"
}

echo "building the OCI image from $TREE ..."
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:img" >/dev/null
umoci unpack --image "$W/oci:img" "$W/bundle" >/dev/null
cp -a "$TREE/." "$W/bundle/rootfs/"
umoci repack --image "$W/oci:img" "$W/bundle" >/dev/null
rm -rf "$W/bundle"
IMG="$REG/deb/minbase:oci"
skopeo copy --dest-tls-verify=false "oci:$W/oci:img" "docker://$IMG" >/dev/null
rm -rf "$W/oci"
R() { ctr-remote --address "$SOCK" "$@"; }
R image pull --plain-http "$IMG" >/dev/null
echo
timed "ctr-remote image convert --estargz (for reference)" \
    ctr-remote --address "$SOCK" image convert --estargz --oci "$IMG" "$REG/deb/minbase:esgz"
R image push --plain-http "$REG/deb/minbase:esgz" >/dev/null
skopeo copy --src-tls-verify=false "docker://$REG/deb/minbase:esgz" "oci:$W/esgz:esgz" >/dev/null
LAYERS="$W/esgz/blobs/sha256"
MANIFEST=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['manifests'][0]['digest'][7:])" "$W/esgz/index.json")
LAYER=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['layers'][0]['digest'][7:])" "$LAYERS/$MANIFEST")
printf '%-58s %8.1f MB\n' "eStargz layer" "$(echo "$(stat -c %s "$LAYERS/$LAYER")/1000000" | bc -l)"

timed "nydus-image create -t estargztoc-ref (bootstrap only)" \
    "$BIN/nydus-image" create -t estargztoc-ref --blob-cache-dir "$W/meta" -B "$W/esgz.boot" \
    "$LAYERS/$LAYER"
printf '%-58s %8.1f KB written\n' "" "$(echo "$(stat -c %s "$W/esgz.boot")/1000" | bc -l)"
timed "nydusify convert (every byte recompressed and pushed)" "$BIN/nydusify" convert \
    --source "$IMG" --target "$REG/deb/minbase:nydus" --plain-http --work-dir "$W/cw"
timed "skopeo copy (the OCI image to a second tag)" skopeo copy --src-tls-verify=false \
    --dest-tls-verify=false "docker://$IMG" "docker://$REG/deb/copy:oci"
timed "nydus-image create (the tree as a zstd Nydus blob)" \
    "$BIN/nydus-image" create -B "$W/nydus.boot" -D "$W/blobs" "$TREE"

read_all() { # label, bootstrap, blob dir[, daemon and its extra flags]
    local mp="$W/mnt" work="$W/work-$RANDOM" daemon="${4:-$BIN/nydusd}"
    mkdir -p "$mp" "$work"
    cp "$W"/meta/*.blob.meta "$work/"
    printf '{"version": 2, "backend": {"type": "localfs", "localfs": {"dir": "%s"}}, "cache": {"type": "filecache", "filecache": {"work_dir": "%s"}}}' "$3" "$work" >"$W/cfg.json"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    # shellcheck disable=SC2086
    $daemon --config "$W/cfg.json" --mountpoint "$mp" --bootstrap "$2" >"$W/nydusd.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do mountpoint -q "$mp" && break; sleep 0.05; done
    timed "$1" sh -c "find '$mp' -type f -exec cat {} + >/dev/null"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    umount "$mp" 2>/dev/null || true
}
echo
read_all "cold read-all: eStargz layer (gzip members)" "$W/esgz.boot" "$LAYERS"
read_all "cold read-all: Nydus blob (zstd)" "$W/nydus.boot" "$W/blobs"
if [ -n "${UPSTREAM_NYDUSD:-}" ]; then
    read_all "cold read-all: eStargz layer, upstream nydusd" "$W/esgz.boot" "$LAYERS" \
        "$UPSTREAM_NYDUSD --rlimit-nofile 0 --log-level error"
fi
