#!/usr/bin/env bash
# The whole journey on the bundled example tree (examples/rootfs):
#   1. installs what it needs (scripts/install-deps.sh --quickstart) and builds the binaries;
#   2. nydus-image: the tree → a RAFS v6 bootstrap + blob, checked, its statistics printed;
#      exported to one disk and mounted by the kernel's EROFS driver;
#   3. a loopback docker-registry on 127.0.0.1; the tree as a one-layer OCI image (umoci),
#      pushed by skopeo; `nydusify convert` to a Nydus image in the same registry, `nydusify
#      check` of it against the source;
#   4. `nydusify mount` of the Nydus image with FUSE: its bootstrap pulled, file data fetched
#      lazily from the registry by range; the tree listed and a file read; SIGTERM; unmounted.
# Steps 2 (the kernel mount) to 4 need root. Everything is left in the output directory
# (argument 1, or a new temporary directory); the registry and the daemon are stopped at exit.
#
# usage: scripts/quickstart.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
bash scripts/install-deps.sh --quickstart
cargo build --release --locked -p nydus-host-native
export PATH="$CARGO_TARGET_DIR/release:$PATH"
out="${1:-$(mktemp -d)}"
mkdir -p "$out/cache"
out=$(cd "$out" && pwd)
step() { echo; echo "=== $* ==="; }

step "nydus-image: examples/rootfs → a RAFS v6 image"
(
    set -x
    nydus-image create --bootstrap "$out/image.boot" --blob "$out/image.blob" examples/rootfs
    nydus-image check --bootstrap "$out/image.boot" --blob "$out/image.blob"
    nydus-image stat --bootstrap "$out/image.boot"
)

if [ "$(id -u)" != 0 ]; then
    echo >&2
    echo "quickstart: stopping here: the mount steps need root (the kernel's EROFS mount and" >&2
    echo "nydusify mount's FUSE mount are mount(2) calls). Run it as root:" >&2
    echo "    sudo bash scripts/quickstart.sh" >&2
    exit 1
fi

REG_PID="" DAEMON_PID=""
EMNT="$out/erofs-mnt" MNT="$out/mnt"
# The type of the file system mounted at $1 (the innermost), from the mount table.
fstype_at() {
    awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++) {}; t = $(i + 1) } END { print t }' \
        /proc/self/mountinfo
}
cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [ -n "$(fstype_at "$MNT")" ]; then umount -l "$MNT" || true; fi
    if [ -n "$(fstype_at "$EMNT")" ]; then umount "$EMNT" || true; fi
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

step "the kernel: the image exported to one disk, mounted with EROFS"
(
    set -x
    nydus-image create --bootstrap "$out/cache/image.boot" --blob-cache-dir "$out/cache" examples/rootfs
    nydus-image export --block --bootstrap "$out/cache/image.boot" --localfs-dir "$out/cache" --output "$out/disk.img"
)
mkdir -p "$EMNT"
mount -t erofs -o ro,loop "$out/disk.img" "$EMNT"
echo "mounted by the kernel ($(fstype_at "$EMNT")) at $EMNT:"
find "$EMNT" | sort
umount "$EMNT"

step "a loopback docker-registry"
mkdir -p "$out/registry"
port_free() { ! (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    cat >"$out/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $out/registry
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$out/registry.yml" >"$out/registry.log" 2>&1 &
    REG_PID=$!
    for _ in $(seq 100); do
        if ! kill -0 "$REG_PID" 2>/dev/null || ! port_free "$port"; then break; fi
        sleep 0.1
    done
    if kill -0 "$REG_PID" 2>/dev/null && ! port_free "$port"; then break; fi
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=""
done
if [ -z "$REG_PID" ]; then
    echo "docker-registry did not start:" >&2; cat "$out/registry.log" >&2; exit 1
fi
REG="127.0.0.1:$port"
echo "docker-registry (pid $REG_PID) serving $REG, storage in $out/registry"

step "the tree as a one-layer OCI image (umoci), pushed with skopeo"
rm -rf "$out/oci" "$out/bundle"
(
    set -x
    umoci init --layout "$out/oci"
    umoci new --image "$out/oci:example"
    umoci unpack --image "$out/oci:example" "$out/bundle"
    cp -a examples/rootfs/. "$out/bundle/rootfs/"
    umoci repack --image "$out/oci:example" "$out/bundle"
    skopeo copy --quiet --dest-tls-verify=false "oci:$out/oci:example" "docker://$REG/example:oci"
)
rm -rf "$out/bundle"

step "nydusify convert and check"
(
    set -x
    nydusify convert --source "$REG/example:oci" --target "$REG/example:nydus" --plain-http \
        --work-dir "$out/convert"
    nydusify check --source "$REG/example:oci" --target "$REG/example:nydus" --plain-http \
        --work-dir "$out/check"
)

step "nydusify mount: the Nydus image with FUSE, data fetched lazily from the registry"
W="$out/work"
mkdir -p "$MNT"
echo "+ nydusify mount --target $REG/example:nydus --plain-http --mount-path $MNT --work-dir $W 2>$out/mount.log &"
nydusify mount --target "$REG/example:nydus" --plain-http --mount-path "$MNT" --work-dir "$W" \
    2>"$out/mount.log" &
DAEMON_PID=$!
mounted=0
for _ in $(seq 600); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then break; fi
    case $(fstype_at "$MNT") in
        fuse*) if grep -q "mounted at" "$out/mount.log"; then mounted=1; break; fi ;;
    esac
    sleep 0.1
done
if [ "$mounted" != 1 ]; then
    echo "nydusify mount did not mount $MNT within 60 s:" >&2; cat "$out/mount.log" >&2; exit 1
fi
cat "$out/mount.log"
logged=$(wc -l <"$out/mount.log")
echo "$MNT: $(fstype_at "$MNT") (daemon pid $DAEMON_PID)"
(
    set -x
    find "$MNT" | sort
    cat "$MNT/etc/os-release"
)

step "SIGTERM: the daemon unmounts and exits"
echo "+ kill -TERM $DAEMON_PID; wait $DAEMON_PID"
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
tail -n +"$((logged + 1))" "$out/mount.log"
if [ "$rc" != 0 ]; then echo "nydusify mount exited with $rc" >&2; exit 1; fi
echo "nydusify mount exited with 0"
if [ -n "$(fstype_at "$MNT")" ]; then
    echo "$MNT is still mounted ($(fstype_at "$MNT"))" >&2; exit 1
fi
echo "$MNT: not mounted any more"
echo "the blob cache stays for the next mount: $(ls "$W/cache" | tr '\n' ' ')"
echo
echo "quickstart passed; everything is in $out"
