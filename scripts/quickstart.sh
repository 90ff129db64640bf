#!/usr/bin/env bash
# Installs what is needed, builds nydus-image and converts the bundled example tree
# (examples/rootfs) into a RAFS v6 image, then checks it, prints its statistics and, as root,
# mounts it with the kernel's EROFS driver and lists it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
bash scripts/install-deps.sh
cargo build --release --locked -p nydus-host-native
NI="$CARGO_TARGET_DIR/release/nydus-image"
out="${1:-$(mktemp -d)}"
mkdir -p "$out/cache"
set -x
"$NI" create --bootstrap "$out/image.boot" --blob "$out/image.blob" examples/rootfs
"$NI" check --bootstrap "$out/image.boot" --blob "$out/image.blob"
"$NI" stat --bootstrap "$out/image.boot"
"$NI" create --bootstrap "$out/cache/image.boot" --blob-cache-dir "$out/cache" examples/rootfs
set +x
if [ "$(id -u)" = 0 ]; then
    data=$(ls "$out"/cache/*.blob.data)
    mkdir -p "$out/mnt"
    python3 - "$out/cache/image.boot" "$out/mnt" "$data" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"erofs", 1, f"device={sys.argv[3]}".encode()) != 0:
    sys.exit(f"mount failed: {os.strerror(ctypes.get_errno())}")
PY
    echo "mounted by the kernel (erofs) at $out/mnt:"
    find "$out/mnt" | sort
    umount "$out/mnt"
fi
echo "image written to $out"
