#!/usr/bin/env bash
# Usage: GPUS=8 tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
set -x
source "$(dirname "$0")/launch_common.sh"
slurm_launch "$1" "$2" test.py "$3" "$4" --launcher="slurm" "${@:5}"
