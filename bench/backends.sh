#!/usr/bin/env bash
# Benchmark of the S3 backend: a 1 GB blob uploaded to and read back from s3s-fs on
# 127.0.0.1, ours (host-native/storage/examples/object_cp.rs: the uploader with parts of
# at most 200 MiB evened out over 4 in flight, and ranged GETs of 8 MiB on 8 threads, as the chunk reader batches)
# next to the AWS CLI (`aws s3 cp --endpoint-url`, its defaults: 8 MiB parts, 10 threads)
# against the same server in the same run. Every copy read back is compared by sha256. Wall
# time (best of $RUNS), MB/s, peak RSS (/usr/bin/time -v).
#
# usage: bench/backends.sh [SIZE_MB]     (default 1000; needs s3s-fs and aws, see
#                                          scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}"
RUNS="${RUNS:-3}"
MB="${1:-1000}"
PATH="$PATH:$HOME/.cargo/bin"
for t in s3s-fs aws /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing $t: run scripts/install-deps.sh" >&2; exit 1; }
done
cargo build --release --locked -p nydus-host-storage --example object_cp >/dev/null 2>&1
CP="$CARGO_TARGET_DIR/release/examples/object_cp"

OUT=$(mktemp -d /var/tmp/nydus-bench-backends.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$OUT/s3/nydus"
s3s-fs --host 127.0.0.1 --port "$PORT" --access-key benchak --secret-key benchsecret "$OUT/s3" \
    >/dev/null 2>&1 &
S3PID=$!
trap 'kill $S3PID 2>/dev/null; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

head -c "$((MB * 1000000))" /dev/urandom >"$OUT/blob"
want=$(sha256sum "$OUT/blob" | cut -d' ' -f1)
CFG="{\"endpoint\":\"127.0.0.1:$PORT\",\"scheme\":\"http\",\"region\":\"us-east-1\",\"bucket_name\":\"nydus\",\"access_key_id\":\"benchak\",\"access_key_secret\":\"benchsecret\"}"
export AWS_ACCESS_KEY_ID=benchak AWS_SECRET_ACCESS_KEY=benchsecret AWS_DEFAULT_REGION=us-east-1
AWS=(aws --endpoint-url "http://127.0.0.1:$PORT" s3 cp --only-show-errors)

printf 'blob: %s MB of random bytes; s3s-fs on 127.0.0.1; %s cores; best of %s\n\n' "$MB" "$(nproc)" "$RUNS"
printf '%-34s %8s %9s %9s\n' client "wall s" "MB/s" "RSS MiB"
measure() { # name, check file ('' for uploads), command...
    local name=$1 check=$2; shift 2
    local best="" rss=0
    for _ in $(seq "$RUNS"); do
        rm -f "$OUT/back"
        local t0 t1
        t0=$(date +%s.%N)
        /usr/bin/time -v -o "$OUT/time" "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
        t1=$(date +%s.%N)
        local w r
        w=$(echo "$t1 - $t0" | bc -l)
        r=$(awk '/Maximum resident/ {print $6}' "$OUT/time")
        if [ -z "$best" ] || [ "$(echo "$w < $best" | bc -l)" = 1 ]; then best=$w; fi
        [ "$r" -gt "$rss" ] && rss=$r
        if [ -n "$check" ]; then
            got=$(sha256sum "$check" | cut -d' ' -f1)
            [ "$got" = "$want" ] || { echo "$name: read back $got, not $want" >&2; exit 1; }
        fi
    done
    printf '%-34s %8.2f %9.1f %9.1f\n' "$name" "$best" "$(echo "$MB / $best" | bc -l)" \
        "$(echo "$rss / 1024" | bc -l)"
}
measure "upload: ours (<=200 MiB parts x4)" "" "$CP" put s3 "$CFG" "$OUT/blob" ours/blob
measure "upload: aws s3 cp" "" "${AWS[@]}" "$OUT/blob" s3://nydus/aws/blob
measure "read back: ours (8 MiB ranges x8)" "$OUT/back" "$CP" get s3 "$CFG" ours/blob "$OUT/back"
measure "read back: aws s3 cp" "$OUT/back" "${AWS[@]}" s3://nydus/aws/blob "$OUT/back"
