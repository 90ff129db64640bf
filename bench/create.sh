#!/usr/bin/env bash
# Benchmark of `nydus-image create` on a realistic tree, next to the best tools at hand in the
# same run: `tar -c | zstd -1 -T0`, `mkfs.erofs`, and upstream's `nydus-image` if available
# ($NYDUS_UPSTREAM, or a local build under ~/.cache/upstream-target). Prints wall time, MB/s,
# files/s, peak RSS and output size (best of $RUNS runs, warm page cache).
#
# usage: bench/create.sh [TREE]    default TREE: a `debootstrap --variant=minbase` rootfs,
#                                  created once under /var/tmp/nydus-bench (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
RUNS="${RUNS:-3}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
NI="$CARGO_TARGET_DIR/release/nydus-image"
UP="${NYDUS_UPSTREAM:-$HOME/.cache/upstream-target/release/nydus-image}"

TREE="${1:-/var/tmp/nydus-bench/rootfs}"
if [ ! -d "$TREE" ]; then
    echo "creating $TREE with debootstrap --variant=minbase bookworm ..."
    mkdir -p "$(dirname "$TREE")"
    debootstrap --variant=minbase bookworm "$TREE.tmp" http://deb.debian.org/debian >/dev/null
    mv "$TREE.tmp" "$TREE"
fi
OUT=$(mktemp -d /var/tmp/nydus-bench-out.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
files=$(find "$TREE" | wc -l)
bytes=$(du -sb --apparent-size "$TREE" | cut -f1)
tar -C "$TREE" -cf - . >/dev/null   # warm the page cache
printf 'tree %s: %d entries, %.1f MB (apparent), %s cores\n\n' "$TREE" "$files" "$(echo "$bytes/1000000" | bc -l)" "$(nproc)"
printf '%-34s %8s %9s %10s %10s %12s\n' tool "wall s" "MB/s" "files/s" "RSS MiB" "output MB"

measure() { # name, output files (space separated), command...
    local name=$1 outputs=$2; shift 2
    local best="" rss=0
    for _ in $(seq "$RUNS"); do
        rm -rf "$OUT/work" && mkdir -p "$OUT/work"
        /usr/bin/time -f "%e %M" -o "$OUT/time" "$@" >/dev/null 2>"$OUT/err" || { echo "$name failed:"; cat "$OUT/err"; return 1; }
        read -r wall kb <"$OUT/time"
        if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc)" = 1 ]; then best=$wall; rss=$kb; fi
    done
    local size=0
    for o in $outputs; do size=$((size + $(stat -c %s "$OUT/work/$o"))); done
    [ "$(echo "$best < 0.01" | bc)" = 1 ] && best=0.01
    printf '%-34s %8.2f %9.1f %10.0f %10.1f %12.2f\n' "$name" "$best" "$(echo "$bytes/1000000/$best" | bc -l)" \
        "$(echo "$files/$best" | bc -l)" "$(echo "$rss/1024" | bc -l)" "$(echo "$size/1000000" | bc -l)"
}

measure "ours: create (v6 zstd blake3)" "boot blob" "$NI" create -B "$OUT/work/boot" -b "$OUT/work/blob" "$TREE"
if [ -x "$UP" ]; then
    measure "upstream: create -t dir-rafs" "boot blob" "$UP" create -t dir-rafs -B "$OUT/work/boot" -b "$OUT/work/blob" "$TREE"
else
    echo "(upstream nydus-image not found: set NYDUS_UPSTREAM to compare)"
fi
measure "tar -c | zstd -1 -T0" "t.tar.zst" sh -c "tar -C '$TREE' -cf - . | zstd -q -1 -T0 -o '$OUT/work/t.tar.zst'"
measure "mkfs.erofs (uncompressed)" "e.img" mkfs.erofs "$OUT/work/e.img" "$TREE"
measure "mkfs.erofs -zlz4" "e.img" mkfs.erofs -zlz4 "$OUT/work/e.img" "$TREE"
measure "ours: --blob-cache-dir (kernel form)" "boot" "$NI" create -B "$OUT/work/boot" --blob-cache-dir "$OUT/work" "$TREE"

# Layer input: the same tree as one tar.gz layer (created once next to the tree).
LAYER="$TREE.tar.gz"
if [ ! -f "$LAYER" ]; then
    tar --xattrs --xattrs-include='*' -C "$TREE" -cf - . | gzip -1 >"$LAYER.tmp" && mv "$LAYER.tmp" "$LAYER"
fi
echo
printf 'layer %s: %.1f MB gzip\n' "$LAYER" "$(echo "$(stat -c %s "$LAYER")/1000000" | bc -l)"
measure "ours: create -t targz-rafs" "boot blob" "$NI" create -t targz-rafs -B "$OUT/work/boot" -b "$OUT/work/blob" "$LAYER"
if [ -x "$UP" ]; then
    measure "upstream: create -t targz-rafs" "boot blob" "$UP" create -t targz-rafs -B "$OUT/work/boot" -b "$OUT/work/blob" "$LAYER"
fi
measure "zcat | zstd -1 -T0" "t.zst" sh -c "zcat '$LAYER' | zstd -q -1 -T0 -o '$OUT/work/t.zst'"

# RAFS v5 of the same tree.
echo
measure "ours: create --fs-version 5" "boot blob" "$NI" create --fs-version 5 -B "$OUT/work/boot" -b "$OUT/work/blob" "$TREE"
if [ -x "$UP" ]; then
    measure "upstream: create --fs-version 5" "boot blob" "$UP" create -t dir-rafs --fs-version 5 -B "$OUT/work/boot" -b "$OUT/work/blob" "$TREE"
fi

# Merge: the tree split into one layer per top-level directory (per-layer bootstraps built
# once), merged into one image; the numbers are metadata work only.
LAYERS="$OUT/layers"
mkdir -p "$LAYERS"
srcs=()
for d in "$TREE"/*/; do
    n=$(basename "$d")
    "$NI" create -t tar-rafs --whiteout-spec none -B "$LAYERS/tmp.boot" -b "$LAYERS/blob" \
        -J "$LAYERS/j" <(tar -C "$TREE" -cf - "./$n") >/dev/null 2>&1 || { echo "layer $n failed"; exit 1; }
    id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['blobs'][0] if json.load(open(sys.argv[1]))['blobs'] else '')" "$LAYERS/j")
    [ -n "$id" ] || continue
    mv "$LAYERS/tmp.boot" "$LAYERS/$id.boot"
    srcs+=("$LAYERS/$id.boot")
done
echo
printf 'merge of %d layer bootstraps (%d entries in all)\n' "${#srcs[@]}" "$files"
measure "ours: merge" "m.boot" "$NI" merge -B "$OUT/work/m.boot" "${srcs[@]}"
if [ -x "$UP" ]; then
    measure "upstream: merge" "m.boot" "$UP" merge -B "$OUT/work/m.boot" "${srcs[@]}"
fi
