#!/usr/bin/env bash
# Runs every fuzz target for a given number of executions (not part of CI, which runs each
# for 20 s): scripts/fuzz.sh [RUNS] [TARGET...]   (RUNS default 1000000, all targets by
# default; JOBS=2 runs two targets at a time).
#
# Seeds: the golden images, plus the committed regression inputs of fuzz/regressions/<target>/
# (inputs that once crashed a target; a crash found here is fixed and its input added there).
# Targets are built without a sanitizer for speed (the core forbids unsafe code; CI's short
# runs use AddressSanitizer). Prints each target's executions and exits non-zero on a crash,
# naming the reproducer under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-1000000}"
shift || true
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
    TARGETS=(bootstrap bootstrap_v5 blob tar_layer oci_image read_plan)
fi
JOBS="${JOBS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nydus-target}/fuzz-nosan"
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo +stable fuzz build -O -s none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run_one() {
    local t=$1
    local corpus="$work/$t"
    mkdir -p "$corpus"
    cp ../core/tests/golden/*.boot ../core/tests/golden/upstream/* "$corpus/"
    rm -f "$corpus/README.md"
    if [ -d "regressions/$t" ]; then cp "regressions/$t"/* "$corpus/"; fi
    local start=$SECONDS
    if ! cargo +stable fuzz run -O -s none "$t" "$corpus" -- -runs="$RUNS" -rss_limit_mb=2048 \
        -print_final_stats=1 >"$work/$t.log" 2>&1; then
        tail -30 "$work/$t.log"
        echo "fuzz $t: CRASH (reproducer under fuzz/artifacts/$t/)"
        return 1
    fi
    local done_line
    done_line=$(grep -a '^Done' "$work/$t.log" || true)
    echo "fuzz $t: ${done_line:-no summary} (no crash, $((SECONDS - start)) s)"
}
status=0
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit $status
