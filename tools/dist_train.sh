#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NPROC [train.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on every node.
# GPUs: NCCL, one process per GPU; no GPU: gloo on CPU (NoFrostRunner).
source "$(dirname "$0")/launch_common.sh"
dist_launch "$2" train.py "$1" --launcher pytorch "${@:3}"
