#!/bin/bash
# Data-parallel training on DEVICE_NUM Ascend devices (one host or several) with msrun (HCCL), in the
# background (FOREGROUND=1 waits and exits with the job's status). msrun is the launcher MindSpore
# recommends since 2.4; run_distributed_train_ascend.sh does the same from an HCCL rank table.
# Outputs: $OUTPUT_DIR/LOG<rank>/training_log.txt and .../ckpt_<rank>/; msrun's own output in
# $OUTPUT_DIR/msrun_launcher.log ($OUTPUT_DIR: current folder).
# Several hosts: run the same command on each with LOCAL_WORKER_NUM (workers on this host, default: all),
# NODE_RANK (0 on the MASTER_ADDR host, then 1, 2, ...), MASTER_ADDR (default 127.0.0.1), MASTER_PORT
# (default 8118). Also CLUSTER_TIME_OUT (default 300 s), BIND_CORE (msrun --bind_core, default False),
# MS_NODE_TIMEOUT (heartbeat timeout of MindSpore's cluster).
# Extra --key=value arguments after the positional ones are passed to train.py. See docs/training_ops.md.
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_distributed_train_ascend_msrun.sh MINDRECORD_DATASET_PATH DEVICE_NUM [LOAD_CHECKPOINT_PATH] [--key=value ...]"
    echo "  MINDRECORD_DATASET_PATH  folder of the MindRecord training files (scripts/convert_dataset_to_mindrecord.sh)"
    echo "  DEVICE_NUM               number of Ascend devices (train_config.batch_size is per device)"
    echo "  LOAD_CHECKPOINT_PATH     optional checkpoint to start from (\"\" for none)"
}

split_args "$@"
check_count 2 3
MINDRECORD_PATH=$(real_path "${POSITIONAL[0]}")
WORKER_NUM=${POSITIONAL[1]}
WORKER_NUM_NAME=DEVICE_NUM
check_uint DEVICE_NUM "$WORKER_NUM" 1
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[2]}")
check_mindrecord "$MINDRECORD_PATH"
check_checkpoint "$LOAD_CHECKPOINT_PATH"
FOREGROUND=${FOREGROUND:-0}
DEFAULTS=(--config_path="$RECIPE_CONFIG")
launch_msrun Ascend
