#!/usr/bin/env bash
# Benchmark of `nydusify optimize`: the debootstrap rootfs of bench/create.sh as an OCI image
# in a loopback docker-registry, converted by our nydusify (timed: the yardstick), then a
# container-like start-up run in a chroot on `nydusify mount --record-prefetch` (the list of
# what it read is the prefetch list), the image optimized with that list (timed), and the
# same start-up on a fresh mount (empty cache, dropped page caches) of the plain and the
# optimized image, with the mount's --prefetch (prefetch table first) and without. Figures:
#   convert / optimize   wall seconds and peak RSS of the command
#   ready                mount start to the start-up command's exit, seconds
#   requests / MB        backend requests and bytes the daemon fetched until then
# Each mount figure is the median of RUNS (3) runs.
#
# usage: bench/optimize.sh [TREE]   (needs root, docker-registry, umoci, skopeo)
#        STARTUP='cmd' replaces the start-up command run in the chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
BIN="$CARGO_TARGET_DIR/release"
for tool in docker-registry umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)"; exit 1; }
done
TREE="${1:-/var/tmp/nydus-bench/rootfs}"
[ -d "$TREE" ] || { echo "no rootfs at $TREE: run bench/create.sh first (it makes one)"; exit 1; }
STARTUP="${STARTUP:-/usr/bin/apt-get --version >/dev/null; /usr/bin/perl -e 'use POSIX; print 1' >/dev/null; /bin/ls -l /usr/lib >/dev/null; /usr/bin/dpkg -l >/dev/null}"
RUNS="${RUNS:-3}"

W=$(mktemp -d /var/tmp/nydus-bench-optimize.XXXXXX)
MP="$W/mnt"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    umount -l "$MP" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/reg" "$MP"
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

echo "building the OCI image from $TREE ..."
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:img" >/dev/null
umoci unpack --image "$W/oci:img" "$W/bundle" >/dev/null
cp -a "$TREE/." "$W/bundle/rootfs/"
umoci repack --image "$W/oci:img" "$W/bundle" >/dev/null
rm -rf "$W/bundle"
skopeo copy --dest-tls-verify=false "oci:$W/oci:img" "docker://$REG/deb/minbase:oci" >/dev/null
rm -rf "$W/oci"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
timed() { # label, command...: wall seconds and peak RSS
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>"$W/cmd.log" || { cat "$W/cmd.log" >&2; exit 1; }
    read -r secs kb <"$W/time"
    printf '%-34s %8.2f s %8.1f MiB\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)"
}
echo
timed "nydusify convert" "$BIN/nydusify" convert --source "$REG/deb/minbase:oci" \
    --target "$REG/deb/minbase:nydus" --plain-http --work-dir "$W/cw"

DPID=""
mount_start() { # target, work dir, extra flags...
    local target=$1 wd=$2; shift 2
    rm -rf "$wd"
    "$BIN/nydusify" --log-level info mount --target "$REG/deb/minbase:$target" --plain-http \
        --mount-path "$MP" --work-dir "$wd" "$@" 2>"$W/d.log" &
    DPID=$!
}
mount_stop() {
    kill -TERM "$DPID"; wait "$DPID" 2>/dev/null || true
    if mountpoint -q "$MP"; then umount -l "$MP"; fi
}
ready() { # waits for the mount, runs the start-up in a chroot
    for _ in $(seq 2000); do [ -e "$MP/usr/bin" ] && break; sleep 0.005; done
    chroot "$MP" /bin/sh -c "$STARTUP"
}

# The prefetch list: what the start-up really reads.
drop
mount_start nydus "$W/rec" --record-prefetch "$W/prefetch.json"
ready
mount_stop
files=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["files"]))' "$W/prefetch.json")
timed "nydusify optimize ($files files listed)" "$BIN/nydusify" optimize --source "$REG/deb/minbase:nydus" \
    --target "$REG/deb/minbase:opt" --plain-http --prefetch-files "$W/prefetch.json" --work-dir "$W/ow"
grep -o 'prefetch blob [0-9a-f]* ([^)]*)' "$W/cmd.log" | sed 's/^/  /' || true

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
printf '%-34s %8s %9s %8s\n' "start-up on a fresh mount" "ready s" requests "MB"
for variant in "nydus:" "opt:" "nydus:--prefetch" "opt:--prefetch"; do
    target=${variant%%:*}; flags=${variant#*:}
    : >"$W/r"; : >"$W/q"; : >"$W/b"
    for _ in $(seq "$RUNS"); do
        drop
        t0=$(now)
        # shellcheck disable=SC2086
        mount_start "$target" "$W/m" $flags
        ready
        since "$t0" >>"$W/r"
        # Backend traffic until ready (the daemon logs it on unmount; with --prefetch the
        # background fetch goes on, so it is read from the log of a stop right away).
        mount_stop
        grep -o 'backend: [0-9]* requests, [0-9]* bytes' "$W/d.log" | tail -1 | awk '{print $2}' >>"$W/q"
        grep -o 'backend: [0-9]* requests, [0-9]* bytes' "$W/d.log" | tail -1 | awk '{print $4/1000000}' >>"$W/b"
    done
    label="${target/nydus/plain}${flags:+ $flags}"
    printf '%-34s %8.2f %9s %8.1f\n' "$label" "$(median <"$W/r")" "$(median <"$W/q")" "$(median <"$W/b")"
done
