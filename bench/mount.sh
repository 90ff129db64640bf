#!/usr/bin/env bash
# Benchmark of the FUSE mount: one image (the debootstrap rootfs of bench/create.sh plus one
# 100 MB file) converted by our nydusify into a loopback docker-registry, then served with its
# blobs read from that registry by: our nydusd entry, upstream nydusd (when built: set
# $UPSTREAM_NYDUSD, see ../shared/ENVIRONMENT.md), with the same v1 configuration (registry
# backend, blobcache); `nydusify mount` (pulls the bootstrap itself); the kernel's EROFS mount
# of the image exported to one disk (`nydus-image export --block`, everything local); and the
# source directory. Figures, each on a fresh mount with an empty cache and dropped page caches:
#   first   start of the daemon (or mount) to the first byte of etc/debian_version
#   find    `find -ls` of the whole tree
#   cold    every file read (tar of the tree piped away), cache empty
#   warm    the same again after dropping the page cache (served from the blob cache)
#   100MB   one 100 MB file read sequentially on a fresh mount, MB/s
#   RSS     the daemon's peak RSS after all of the above
# Each server is measured RUNS times (3 by default; the figures here vary by 10-50 % from
# run to run) and the median of each figure is printed (the largest RSS).
#
# usage: bench/mount.sh [TREE]     (needs root, docker-registry, umoci, skopeo)
#        ONLY="ours erofs" picks servers (in that order); PROFILE=1 prints a perf profile
#        of each daemon during the warm read; LOG_LEVEL=info SHOW_LOG=1 shows our daemon's log.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
BIN="$CARGO_TARGET_DIR/release"
UP="${UPSTREAM_NYDUSD:-/var/tmp/upstream-target/release/nydusd}"
for tool in docker-registry umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)"; exit 1; }
done
TREE="${1:-/var/tmp/nydus-bench/rootfs}"
[ -d "$TREE" ] || { echo "no rootfs at $TREE: run bench/create.sh first (it makes one)"; exit 1; }

W=$(mktemp -d /var/tmp/nydus-bench-mount.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    umount -l "$W/mnt" 2>/dev/null || true
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

echo "building the image from $TREE + a 100 MB file ..."
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:img" >/dev/null
umoci unpack --image "$W/oci:img" "$W/bundle" >/dev/null
cp -a "$TREE/." "$W/bundle/rootfs/"
head -c 100000000 /dev/urandom >"$W/bundle/rootfs/big100"
cp -a "$W/bundle/rootfs" "$W/src"
umoci repack --image "$W/oci:img" "$W/bundle" >/dev/null
rm -rf "$W/bundle"
skopeo copy --dest-tls-verify=false "oci:$W/oci:img" "docker://$REG/deb/minbase:oci" >/dev/null
rm -rf "$W/oci"
"$BIN/nydusify" convert --source "$REG/deb/minbase:oci" --target "$REG/deb/minbase:nydus" \
    --plain-http --work-dir "$W/cw" >/dev/null 2>&1
"$BIN/nydusify" check --target "$REG/deb/minbase:nydus" --plain-http --work-dir "$W/chk" >/dev/null
BOOT="$W/chk/nydus_bootstrap"
mkdir -p "$W/blobs"
for id in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["blobs"]))' "$W/chk/nydus_output.json"); do
    cp "$W/reg/docker/registry/v2/blobs/sha256/${id:0:2}/$id/data" "$W/blobs/$id"
done
"$BIN/nydus-image" export --block --bootstrap "$BOOT" --localfs-dir "$W/blobs" --output "$W/disk.img" >/dev/null
files=$(find "$W/src" -type f | wc -l)
bytes=$(du -sb --apparent-size "$W/src" | cut -f1)
printf 'image: %s files, %.1f MB of file data; blobs in docker-registry on 127.0.0.1; %s cores; median of %s runs\n\n' \
    "$files" "$(echo "$bytes/1000000" | bc -l)" "$(nproc)" "${RUNS:-3}"
printf '%-26s %8s %8s %8s %8s %10s %8s\n' server "first s" "find s" "cold s" "warm s" "100MB MB/s" "RSS MiB"

MP="$W/mnt"
mkdir -p "$MP"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
config() { # work dir
    printf '{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":"%s","repo":"deb/minbase"}},"cache":{"type":"blobcache","config":{"work_dir":"%s"}}},"mode":"direct","digest_validate":false,"enable_xattr":true,"fs_prefetch":{"enable":false}}' "$REG" "$1"
}
DPID=""
start() { # kind, work dir: starts the server, sets DPID ("" for the kernel and the source)
    local kind=$1 wd=$2
    rm -rf "$wd"; mkdir -p "$wd"
    config "$wd" >"$W/cfg.json"
    DPID=""
    case $kind in
        ours) "$BIN/nydusd" --config "$W/cfg.json" --mountpoint "$MP" --bootstrap "$BOOT" \
                  --log-level "${LOG_LEVEL:-error}" 2>"$W/d.log" & DPID=$! ;;
        upstream) "$UP" --config "$W/cfg.json" --mountpoint "$MP" --bootstrap "$BOOT" \
                  --log-level error --rlimit-nofile 0 >"$W/d.log" 2>&1 & DPID=$! ;;
        nydusify) "$BIN/nydusify" --log-level error mount --target "$REG/deb/minbase:nydus" \
                  --plain-http --mount-path "$MP" --work-dir "$wd" ${NYDUSIFY_ARGS:-} 2>"$W/d.log" & DPID=$! ;;
        erofs) mount -t erofs -o ro,loop "$W/disk.img" "$MP" ;;
        source) ;;
    esac
}
stop() {
    case $1 in
        source) ;;
        erofs) umount "$MP" ;;
        *) kill -TERM "$DPID"; wait "$DPID" 2>/dev/null || true
           if mountpoint -q "$MP"; then umount -l "$MP"; fi ;;
    esac
}
root() { if [ "$1" = source ]; then echo "$W/src"; else echo "$MP"; fi; }
first_byte() { # root
    for _ in $(seq 2000); do head -c1 "$1/etc/debian_version" >/dev/null 2>&1 && return; sleep 0.005; done
    echo "no first byte within 10 s" >&2; cat "$W/d.log" >&2; exit 1
}
rss() { if [ -n "$DPID" ]; then awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$DPID/status"; else echo "-"; fi; }

run() { # kind: one measurement of every figure, appended to the R_* arrays
    local kind=$1 r t0 first find cold warm big rssv
    drop
    t0=$(now); start "$kind" "$W/wd1"; r=$(root "$kind")
    first_byte "$r"; first=$(since "$t0")
    t0=$(now); find "$r" -ls >/dev/null; find=$(since "$t0")
    t0=$(now); tar -C "$r" -cf - . | cat >/dev/null; cold=$(since "$t0")
    drop
    local perf=""
    if [ -n "${PROFILE:-}" ] && [ -n "$DPID" ]; then
        perf record -F 999 -g -p "$DPID" -o "$W/perf.data" >/dev/null 2>&1 & perf=$!
        sleep 0.5
    fi
    t0=$(now); tar -C "$r" -cf - . | cat >/dev/null; warm=$(since "$t0")
    if [ -n "$perf" ]; then
        kill -INT "$perf"; wait "$perf" || true
        perf report -i "$W/perf.data" --no-children --stdio --sort symbol 2>/dev/null \
            | grep -v '^#' | grep '%' | head -25 >&2
    fi
    rssv=$(rss)
    stop "$kind"
    drop
    start "$kind" "$W/wd2"; r=$(root "$kind"); first_byte "$r"
    t0=$(now); dd if="$r/big100" of=/dev/null bs=1M 2>/dev/null; big=$(echo "100 / $(since "$t0")" | bc -l)
    stop "$kind"
    if [ -n "${SHOW_LOG:-}" ]; then tail -20 "$W/d.log" >&2; fi
    R_FIRST+=("$first"); R_FIND+=("$find"); R_COLD+=("$cold"); R_WARM+=("$warm")
    R_BIG+=("$big"); R_RSS+=("$rssv")
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
largest() { printf '%s\n' "$@" | sort -g | tail -1; }
RUNS="${RUNS:-3}"
measure() { # kind, label: RUNS runs, the medians printed
    R_FIRST=(); R_FIND=(); R_COLD=(); R_WARM=(); R_BIG=(); R_RSS=()
    for _ in $(seq "$RUNS"); do run "$1"; done
    printf '%-26s %8.2f %8.2f %8.2f %8.2f %10.0f %8s\n' "$2" "$(median "${R_FIRST[@]}")" \
        "$(median "${R_FIND[@]}")" "$(median "${R_COLD[@]}")" "$(median "${R_WARM[@]}")" \
        "$(median "${R_BIG[@]}")" "$(largest "${R_RSS[@]}")"
}

label() {
    case $1 in
        ours) echo "ours (nydusd entry)" ;; upstream) echo "upstream nydusd" ;;
        nydusify) echo "ours (nydusify mount)" ;; erofs) echo "kernel EROFS (exported)" ;;
        source) echo "source directory" ;; *) echo "unknown server $1" >&2; exit 1 ;;
    esac
}
for k in ${ONLY:-ours upstream nydusify erofs source}; do
    if [ "$k" = upstream ] && [ ! -x "$UP" ]; then
        echo "upstream nydusd: not built at $UP (set UPSTREAM_NYDUSD; see ../shared/ENVIRONMENT.md)"
        continue
    fi
    measure "$k" "$(label "$k")"
done
