#!/usr/bin/env bash
# Usage: GPUS=16 tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
set -x
source "$(dirname "$0")/launch_common.sh"
slurm_launch "$1" "$2" train.py "$3" --work-dir="$4" --launcher="slurm" "${@:5}"
