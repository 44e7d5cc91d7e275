#!/usr/bin/env bash
# Usage: tools/misc/portability_check.sh [pytest args]
# Runs the tests that train or compare numbers (pytest marker `numerics`) under
# the float paths of other CPUs, emulated on this x86 machine, each with 1 and
# 2 torch threads, and prints one line per configuration:
#   native                 this CPU's kernels
#   aten-default           ATen's kernels without vector extensions
#   onednn-sse41           oneDNN (convolutions) capped at SSE4.1
#   avx2                   ATen and oneDNN at AVX2 (an AVX2-only machine)
# Exits non-zero when any configuration fails; each one's log is kept in
# $LOG_DIR (default work_dirs/portability_check).
# Settings: PYTHON (default .venv/bin/python), THREADS (default "1 2"),
# FLOAT_PATHS (names above, default all), LOG_DIR.
cd "$(dirname "$0")/../.." || exit 2
PYTHON=${PYTHON:-.venv/bin/python}
THREADS=${THREADS:-"1 2"}
FLOAT_PATHS=${FLOAT_PATHS:-"native aten-default onednn-sse41 avx2"}
LOG_DIR=${LOG_DIR:-work_dirs/portability_check}
mkdir -p "$LOG_DIR"

path_env() {
    case $1 in
        native) echo "" ;;
        aten-default) echo "ATEN_CPU_CAPABILITY=default" ;;
        onednn-sse41) echo "ONEDNN_MAX_CPU_ISA=SSE41" ;;
        avx2) echo "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" ;;
        *) echo "portability_check: unknown float path '$1' in FLOAT_PATHS (allowed:" \
                "native aten-default onednn-sse41 avx2)" >&2; exit 2 ;;
    esac
}

failed=0
summary=()
for name in $FLOAT_PATHS; do
    vars=$(path_env "$name") || exit 2
    for threads in $THREADS; do
        log="$LOG_DIR/${name}_${threads}t.log"
        start=$(date +%s)
        # shellcheck disable=SC2086  # $vars is a list of NAME=VALUE words
        env $vars OMP_NUM_THREADS="$threads" "$PYTHON" -m pytest tests -q -n 0 \
            -m numerics "$@" >"$log" 2>&1
        rc=$?
        result=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1 | tr -d '=')
        line=$(printf '%-13s %s thread(s)  %-6s %4ss  %s' "$name" "$threads" \
            "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "$(($(date +%s) - start))" \
            "${result:-no pytest summary, see $log}")
        echo "$line"
        summary+=("$line")
        [ $rc -eq 0 ] || failed=1
    done
done
echo "--- portability check (logs in $LOG_DIR) ---"
printf '%s\n' "${summary[@]}"
exit $failed
