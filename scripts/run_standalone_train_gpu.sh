#!/bin/bash
# Standalone training on one GPU, in the background as the original (FOREGROUND=1 waits).
# Outputs: $OUTPUT_DIR/LOG<DEVICE_ID>/training_log.txt and .../ckpt_0/ ($OUTPUT_DIR: current folder).
# Extra --key=value arguments after the positional ones are passed to train.py
# (e.g. --epoch_size=10 --train_config.batch_size=16 --resume=true). See docs/training_ops.md.
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_standalone_train_gpu.sh DEVICE_ID MINDRECORD_DATASET_PATH [LOAD_CHECKPOINT_PATH] [--key=value ...]"
    echo "  DEVICE_ID                GPU id (as CUDA numbers them)"
    echo "  MINDRECORD_DATASET_PATH  folder of the MindRecord training files (scripts/convert_dataset_to_mindrecord.sh)"
    echo "  LOAD_CHECKPOINT_PATH     optional checkpoint to start from (\"\" for none)"
}

split_args "$@"
check_count 2 3
DEVICE_ID=${POSITIONAL[0]}
check_uint DEVICE_ID "$DEVICE_ID"
MINDRECORD_PATH=$(real_path "${POSITIONAL[1]}")
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[2]}")
check_mindrecord "$MINDRECORD_PATH"
check_checkpoint "$LOAD_CHECKPOINT_PATH"
check_device_count GPU $((DEVICE_ID + 1))
FOREGROUND=${FOREGROUND:-0}
DEFAULTS=(--config_path="$RECIPE_CONFIG")
launch_standalone GPU "$DEVICE_ID"
