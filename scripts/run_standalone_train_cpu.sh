#!/bin/bash
# Standalone training on the CPU, in the foreground (FOREGROUND=0 runs it in the background).
# Outputs: $OUTPUT_DIR/LOG0/training_log.txt and .../ckpt_0/ ($OUTPUT_DIR: current folder).
# Extra --key=value arguments after the positional ones are passed to train.py, e.g. a small
# network for a quick try: --net_config.block_type=BasicBlock --net_config.block_class=[1,1,1,1]
# --dataset_config.input_res_train=[256,256] --train_config.batch_size=2. See docs/training_ops.md.
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_standalone_train_cpu.sh MINDRECORD_DATASET_PATH [LOAD_CHECKPOINT_PATH] [--key=value ...]"
    echo "  MINDRECORD_DATASET_PATH  folder of the MindRecord training files (scripts/convert_dataset_to_mindrecord.sh)"
    echo "  LOAD_CHECKPOINT_PATH     optional checkpoint to start from (\"\" for none)"
}

split_args "$@"
check_count 1 2
MINDRECORD_PATH=$(real_path "${POSITIONAL[0]}")
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[1]}")
check_mindrecord "$MINDRECORD_PATH"
check_checkpoint "$LOAD_CHECKPOINT_PATH"
FOREGROUND=${FOREGROUND:-1}
DEFAULTS=()
launch_standalone CPU 0
