#!/usr/bin/env bash
# Benchmark of the read path: every file of a real rootfs image read back through the chunk
# reader (`nydus-image unpack --output -`, the tar streamed to stdout, and `check` with the
# blob, which verifies every chunk), next to `zstd -dc` of the same tree as one
# `tar | zstd -1 -T0` file, in the same run; and, if $NYDUS_BEFORE points at an older
# nydus-image, that one's unpack to a file next to ours. Wall time (best of $RUNS), MB/s of
# file data, peak RSS.
#
# usage: bench/read.sh [TREE]    default TREE: the debootstrap rootfs of bench/create.sh,
#                                created once under /var/tmp/nydus-bench (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
RUNS="${RUNS:-5}"
cargo build --release --locked -p nydus-host-native >/dev/null 2>&1
NI="$CARGO_TARGET_DIR/release/nydus-image"
BEFORE="${NYDUS_BEFORE:-}"

TREE="${1:-/var/tmp/nydus-bench/rootfs}"
if [ ! -d "$TREE" ]; then
    echo "creating $TREE with debootstrap --variant=minbase bookworm ..."
    mkdir -p "$(dirname "$TREE")"
    debootstrap --variant=minbase bookworm "$TREE.tmp" http://deb.debian.org/debian >/dev/null
    mv "$TREE.tmp" "$TREE"
fi
OUT=$(mktemp -d /var/tmp/nydus-bench-read.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
"$NI" create -B "$OUT/boot" -b "$OUT/blob" "$TREE" >/dev/null
tar -C "$TREE" -cf - . | zstd -q -1 -T0 -o "$OUT/t.tar.zst"
bytes=$(du -sb --apparent-size "$TREE" | cut -f1)
cat "$OUT/blob" "$OUT/t.tar.zst" >/dev/null # warm the page cache
printf 'tree %s: %.1f MB of files; blob %.1f MB; tar.zst %.1f MB; %s cores\n\n' "$TREE" \
    "$(echo "$bytes/1000000" | bc -l)" "$(echo "$(stat -c %s "$OUT/blob")/1000000" | bc -l)" \
    "$(echo "$(stat -c %s "$OUT/t.tar.zst")/1000000" | bc -l)" "$(nproc)"
printf '%-44s %8s %9s %9s\n' reader "wall s" "MB/s" "RSS MiB"

measure() { # name, command... (stdout discarded)
    local name=$1; shift
    local best="" rss=0
    for _ in $(seq "$RUNS"); do
        rm -f "$OUT/out.tar"
        /usr/bin/time -f "%e %M" -o "$OUT/time" "$@" >/dev/null 2>"$OUT/err" || { echo "$name failed:"; cat "$OUT/err"; return 1; }
        read -r wall kb <"$OUT/time"
        if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc)" = 1 ]; then best=$wall; rss=$kb; fi
    done
    [ "$(echo "$best < 0.01" | bc)" = 1 ] && best=0.01
    printf '%-44s %8.2f %9.1f %9.1f\n' "$name" "$best" "$(echo "$bytes/1000000/$best" | bc -l)" "$(echo "$rss/1024" | bc -l)"
}

measure "zstd -dc (one tar.zst stream)" zstd -q -dc "$OUT/t.tar.zst"
measure "ours: unpack --output - (tar to stdout)" "$NI" unpack -B "$OUT/boot" -b "$OUT/blob" --output -
measure "ours: unpack --output FILE" "$NI" unpack -B "$OUT/boot" -b "$OUT/blob" --output "$OUT/out.tar"
measure "ours: check -b (every chunk verified)" "$NI" check -B "$OUT/boot" -b "$OUT/blob"
if [ -n "$BEFORE" ] && [ -x "$BEFORE" ]; then
    measure "before: unpack --output FILE" "$BEFORE" unpack -B "$OUT/boot" -b "$OUT/blob" --output "$OUT/out.tar"
    measure "before: check -b" "$BEFORE" check -B "$OUT/boot" -b "$OUT/blob"
fi
