#!/usr/bin/env bash
# Benchmark of `nydusify commit`: the debootstrap rootfs of bench/create.sh as an OCI image in
# a loopback docker-registry; `nydusify convert` of it (timed: the yardstick); then Debian's
# containerd + runc (own socket, CRI off) run a container of it, the container changes files
# (CHANGE: by default 40 MB of new files, a directory of /usr/share removed, a file of /etc
# rewritten), and `nydusify commit` is timed twice: the first commit converts the OCI base on
# the way (with --build-cache-tag), the second of a new container of the same image reuses the
# converted layers from the build cache. Figures: wall seconds and peak RSS of each command,
# the seconds the container was paused, and the committed blob's size.
#
# usage: bench/commit.sh [TREE]   (needs root, docker-registry, umoci, skopeo, containerd, runc)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
BIN="$CARGO_TARGET_DIR/release"
for tool in docker-registry umoci skopeo containerd ctr runc; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash scripts/install-deps.sh)"; exit 1; }
done
TREE="${1:-/var/tmp/nydus-bench/rootfs}"
[ -d "$TREE" ] || { echo "no rootfs at $TREE: run bench/create.sh first (it makes one)"; exit 1; }
CHANGE="${CHANGE:-head -c 40000000 /dev/urandom >/var/new.bin && rm -rf /usr/share/doc && echo changed >/etc/hostname && sync}"
NS=bench

W=$(mktemp -d /var/tmp/nydus-bench-commit.XXXXXX)
PIDS=()
SOCK="$W/c.sock"
ctr_() { ctr --address "$SOCK" -n "$NS" "$@"; }
cleanup() {
    if [ -S "$SOCK" ]; then
        for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
        sleep 0.5
        for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$t" >/dev/null 2>&1 || true; done
        for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
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
(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "docker-registry did not start:" >&2; cat "$W/reg.log" >&2; exit 1; }
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
for _ in $(seq 100); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$SOCK" version >/dev/null 2>&1 || { echo "containerd did not start:" >&2; cat "$W/containerd.log" >&2; exit 1; }

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
ctr_ images pull --plain-http "$IMG" >/dev/null

timed() { # label, command...: wall seconds and peak RSS
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>"$W/cmd.log" || { cat "$W/cmd.log" >&2; exit 1; }
    read -r secs kb <"$W/time"
    printf '%-44s %8.2f s %8.1f MiB\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)"
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
echo
timed "nydusify convert (the same image)" "$BIN/nydusify" convert --source "$IMG" \
    --target "$REG/deb/minbase:nydus" --plain-http --work-dir "$W/cw"
for i in 1 2; do
    ctr_ run -d --snapshotter overlayfs "$IMG" "c$i" /bin/sleep 3600 >/dev/null
    ctr_ tasks exec --exec-id change "c$i" /bin/sh -c "$CHANGE"
    label="nydusify commit (base converted)"
    [ "$i" = 2 ] && label="nydusify commit (base from the build cache)"
    timed "$label" "$BIN/nydusify" commit --containerd-address "$SOCK" --namespace "$NS" \
        --container "c$i" --target "$REG/deb/minbase:c$i" --plain-http --work-dir "$W/w" \
        --build-cache-tag commit-cache --output-json "$W/c$i.json"
    printf '%-44s %8.2f s, blob %s MB\n' "  container paused" "$(field "$W/c$i.json" paused_seconds)" \
        "$(echo "$(field "$W/c$i.json" blob_size)/1000000" | bc -l | cut -c1-5)"
done
