#!/usr/bin/env bash
# Usage: tools/misc/dist_soak.sh [pytest args]
# Runs the tests that launch tools/dist_train.sh and tools/dist_test.sh with two
# ranks (pytest marker `dist_tools`) ROUNDS times in a row, round by round, beside
# a busy process (one `yes` per BUSY, default 1) that slows the ranks unevenly, as
# a loaded CI machine does. Stops at the first failure. A rare abort at process
# teardown shows up here as a non-zero exit of a run that had written its results.
# Settings: PYTHON (default .venv/bin/python), ROUNDS (default 50), BUSY (default 1),
# LOG (default work_dirs/dist_soak.log).
cd "$(dirname "$0")/../.." || exit 2
PYTHON=${PYTHON:-.venv/bin/python}
ROUNDS=${ROUNDS:-50}
BUSY=${BUSY:-1}
LOG=${LOG:-work_dirs/dist_soak.log}
case $ROUNDS in ''|*[!0-9]*|0) echo "dist_soak: ROUNDS=$ROUNDS must be a number >= 1" >&2; exit 2 ;; esac
case $BUSY in ''|*[!0-9]*) echo "dist_soak: BUSY=$BUSY must be a number >= 0" >&2; exit 2 ;; esac
mkdir -p "$(dirname "$LOG")"

busy_pids=()
stop_busy() { [ ${#busy_pids[@]} -eq 0 ] || kill "${busy_pids[@]}" 2>/dev/null; }
trap stop_busy EXIT
for _ in $(seq 1 "$BUSY"); do
    yes >/dev/null &
    busy_pids+=($!)
done

start=$(date +%s)
"$PYTHON" -m pytest tests -q -n 0 -m dist_tools --repeat "$ROUNDS" -x "$@" >"$LOG" 2>&1
rc=$?
result=$(grep -E '[0-9]+ (passed|failed|error)' "$LOG" | tail -n 1 | tr -d '=')
echo "dist_soak: $ROUNDS rounds beside $BUSY busy process(es): $([ $rc -eq 0 ] && echo ok || echo FAILED)" \
    "in $(($(date +%s) - start)) s: ${result:-no pytest summary}; log $LOG"
exit $rc
