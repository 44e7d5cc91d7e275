# The launcher lines of dist_train.sh, dist_test.sh, slurm_train.sh and
# slurm_test.sh, sourced by them: tools/TOOL with the repository on PYTHONPATH.
TOOLS_DIR=$(dirname "${BASH_SOURCE[0]}")
export PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH

# dist_launch NPROC TOOL ARGS...: NPROC processes of this node (torchrun).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on every node.
dist_launch() {
    local nproc=$1 tool=$2
    shift 2
    ${PYTHON:-python} -m torch.distributed.run \
        --nnodes=${NNODES:-1} \
        --node_rank=${NODE_RANK:-0} \
        --master_addr=${MASTER_ADDR:-"127.0.0.1"} \
        --nproc_per_node=$nproc \
        --master_port=${PORT:-29500} \
        "$TOOLS_DIR/$tool" "$@"
}

# slurm_launch PARTITION JOB_NAME TOOL ARGS...: GPUS tasks (default 8),
# GPUS_PER_NODE per node (8), CPUS_PER_TASK (5), SRUN_ARGS added to srun.
slurm_launch() {
    local partition=$1 job_name=$2 tool=$3
    shift 3
    srun -p ${partition} \
        --job-name=${job_name} \
        --gres=gpu:${GPUS_PER_NODE:-8} \
        --ntasks=${GPUS:-8} \
        --ntasks-per-node=${GPUS_PER_NODE:-8} \
        --cpus-per-task=${CPUS_PER_TASK:-5} \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        ${PYTHON:-python} -u "$TOOLS_DIR/$tool" "$@"
}
