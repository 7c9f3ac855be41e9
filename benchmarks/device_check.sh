#!/usr/bin/env bash
# One-shot GPU proving run (at most 7 minutes: DEVICE_CHECK_SECONDS, default 420): environment, data, smoke test,
# GPU evaluation, throughput, short full-size runs, several runs sharing the GPU, summary.
#
#   bash benchmarks/device_check.sh OUT_DIR            # on the GPU machine ($OUT when no folder is given)
#   bash benchmarks/device_check.sh OUT_DIR --dry-run  # any machine, tiny scale (tests/test_device_check.py)
#   bash benchmarks/device_check.sh OUT_DIR --equivalence  # second command: fast vs conventional mAP, 3 seeds
#   bash benchmarks/device_check.sh OUT_DIR --step-graphs  # whole-step CUDA graphs: agreement, speed, full runs
#
# Each stage runs under its own timeout and writes its JSON as it goes; the smoke test failing
# stops the check. OUT_DIR receives few files (the device tool returns at most 8): summary.md,
# device_check.log, RESULTS.md (with the check's section recorded on CUDA) and device_check.tar.gz
# (every stage's JSON and log, and the profiler tables).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-}" DRY="" MODE=check
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY="--dry-run" ;;
        --equivalence) MODE=equivalence ;;  # a second command: fast vs conventional mAP, 3 seeds each
        --step-graphs) MODE=step-graphs ;;  # benchmarks/step_graph_check.py's stages
        -*) echo "unknown option $arg (use --dry-run, --equivalence, --step-graphs)" >&2; exit 2 ;;
        *) OUT_DIR="$arg" ;;
    esac
done
SECTION=$([ "$MODE" = equivalence ] && echo device_check_equivalence || echo device_check)
[ -n "$OUT_DIR" ] || { echo "usage: $0 OUT_DIR [--dry-run] [--equivalence | --step-graphs]" >&2; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/readnet-device-check-work.XXXXXX")"
DATA="${READNET_CHECK_DATA:-${TMPDIR:-/tmp}/readnet-device-check-data}"
mkdir -p "$OUT_DIR" "$DATA"
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
LOG="$OUT_DIR/device_check.log"
: > "$LOG"
CHECK=(benchmarks/device_check.py --work "$WORK" --data "$DATA" $DRY)
GRAPHS=(benchmarks/step_graph_check.py --work "$WORK" --data "$DATA" $DRY)

BUDGET="${DEVICE_CHECK_SECONDS:-420}"  # the whole check; later stages get what is left (30 s kept for the summary)

stage() {  # stage NAME SECONDS COMMAND...: run under a timeout, log to WORK/NAME.log and the main log
    local name=$1 seconds=$2; shift 2
    local started=$SECONDS left=$((BUDGET - SECONDS - 30))
    [ "$name" = summary ] || [ "$name" = share ] && left=$seconds  # cheap, and needed for the record
    (( left < seconds )) && seconds=$left
    (( seconds < 10 )) && { echo "== $name: skipped, the ${BUDGET}s budget is spent" | tee -a "$LOG"; return 124; }
    echo "== $name (timeout ${seconds}s)" | tee -a "$LOG"
    timeout -k 10 "$seconds" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$WORK/$name.log" >> "$LOG"
    echo "== $name: exit $rc after $((SECONDS - started)) s" | tee -a "$LOG"
    return $rc
}

finish() {
    if [ "$MODE" = step-graphs ]; then
        stage summary 60 "$PY" "${GRAPHS[@]}" summary
    else
        stage summary 60 "$PY" "${CHECK[@]}" summary --section "$SECTION"
    fi
    cp "$WORK/summary.md" "$OUT_DIR/" 2>/dev/null
    cp benchmarks/RESULTS.md "$OUT_DIR/RESULTS.md"
    tar -czf "$OUT_DIR/device_check.tar.gz" -C "$WORK" . 2>/dev/null
    cat "$OUT_DIR/summary.md" 2>/dev/null
}
trap finish EXIT

stage env 60 "$PY" "${CHECK[@]}" env
if [ "$MODE" = equivalence ]; then
    stage data 120 "$PY" "${CHECK[@]}" data
    stage equivalence 420 "$PY" "${CHECK[@]}" equivalence
    exit 0
fi
if [ "$MODE" = step-graphs ]; then
    # the Market-size set and its decode cache, while the agreement stage runs
    ("$PY" "${CHECK[@]}" data && "$PY" "${GRAPHS[@]}" decode) > "$WORK/data.log" 2>&1 &
    DATA_PID=$!
    stage agreement 240 "$PY" "${GRAPHS[@]}" agreement
    wait $DATA_PID; echo "== data: exit $?" | tee -a "$LOG"; tail -n 5 "$WORK/data.log" >> "$LOG"
    stage throughput 150 "$PY" "${GRAPHS[@]}" throughput
    stage run-basel 240 "$PY" "${GRAPHS[@]}" run --preset basel
    stage run-atl_acn 240 "$PY" "${GRAPHS[@]}" run --preset atl_acn
    exit 0
fi
"$PY" "${CHECK[@]}" data > "$WORK/data.log" 2>&1 &  # the Market-size set, while the smoke test runs
DATA_PID=$!
stage smoke 120 "$PY" "${CHECK[@]}" smoke || { echo "smoke test failed: stopping" | tee -a "$LOG"; kill $DATA_PID 2>/dev/null; exit 1; }
if [ -z "$DRY" ]; then
    stage eval 60 "$PY" benchmarks/eval_speed.py --devices cuda --worst-case --repeats 5
fi
echo "== waiting for the data stage" | tee -a "$LOG"
wait $DATA_PID; echo "== data: exit $?" | tee -a "$LOG"; tail -n 5 "$WORK/data.log" >> "$LOG"
stage throughput 180 "$PY" "${CHECK[@]}" throughput
stage runs 100 "$PY" "${CHECK[@]}" runs
PROCESSES=$([ -n "$DRY" ] && echo 2 || echo 4)
rm -f "$WORK"/share-ready-* "$WORK"/share-worker-*.json
started=$SECONDS SHARE_SECONDS=$((BUDGET - SECONDS - 40 < 100 ? BUDGET - SECONDS - 40 : 100))
if (( SHARE_SECONDS < 15 )); then
    echo "== share: skipped, the ${BUDGET}s budget is spent" | tee -a "$LOG"; exit 0
fi
for rank in $(seq 0 $((PROCESSES - 1))); do
    timeout -k 10 "$SHARE_SECONDS" "$PY" "${CHECK[@]}" share-worker --rank "$rank" --processes "$PROCESSES" \
        > "$WORK/share-worker-$rank.log" 2>&1 &
done
wait
echo "== share workers done after $((SECONDS - started)) s" | tee -a "$LOG"
stage share 30 "$PY" "${CHECK[@]}" share --processes "$PROCESSES"
exit 0
