#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on every node.
source "$(dirname "$0")/launch_common.sh"
dist_launch "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
