#!/bin/bash
# Data-parallel training on the CPU with WORKER_NUM processes (one host or several) started by msrun, in the
# foreground (FOREGROUND=0 runs it in the background). Every worker reads its own share of the
# data and the gradients are averaged, so the checkpoints of all ranks hold the same weights.
# Outputs: $OUTPUT_DIR/LOG<rank>/training_log.txt and .../ckpt_<rank>/; msrun's own output in
# $OUTPUT_DIR/msrun_launcher.log ($OUTPUT_DIR: current folder).
# Several hosts: run the same command on each with LOCAL_WORKER_NUM (workers on this host, default: all),
# NODE_RANK (0 on the MASTER_ADDR host, then 1, 2, ...), MASTER_ADDR (default 127.0.0.1), MASTER_PORT
# (default 8118). Also CLUSTER_TIME_OUT (default 300 s), BIND_CORE (msrun --bind_core, default False),
# MS_NODE_TIMEOUT (heartbeat timeout of MindSpore's cluster).
# Extra --key=value arguments after the positional ones are passed to train.py. See docs/training_ops.md.
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_distributed_train_cpu.sh MINDRECORD_DATASET_PATH WORKER_NUM [LOAD_CHECKPOINT_PATH] [--key=value ...]"
    echo "  MINDRECORD_DATASET_PATH  folder of the MindRecord training files (scripts/convert_dataset_to_mindrecord.sh)"
    echo "  WORKER_NUM               number of worker processes (train_config.batch_size is per worker)"
    echo "  LOAD_CHECKPOINT_PATH     optional checkpoint to start from (\"\" for none)"
}

split_args "$@"
check_count 2 3
MINDRECORD_PATH=$(real_path "${POSITIONAL[0]}")
WORKER_NUM=${POSITIONAL[1]}
WORKER_NUM_NAME=WORKER_NUM
check_uint WORKER_NUM "$WORKER_NUM" 1
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[2]}")
check_mindrecord "$MINDRECORD_PATH"
check_checkpoint "$LOAD_CHECKPOINT_PATH"
FOREGROUND=${FOREGROUND:-1}
DEFAULTS=()
launch_msrun CPU
