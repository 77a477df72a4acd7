#!/bin/bash
# Evaluation on one GPU with eval.py, in the foreground (FOREGROUND=0: background).
# RUN_MODE val computes COCO mAP on DATA_DIR's val2017; test writes the test-dev results file.
# Outputs: $OUTPUT_DIR/LOG_EVAL<DEVICE_ID>/eval_log.txt and the results below it
# ($OUTPUT_DIR: current folder). Extra --key=value arguments are passed to eval.py
# (e.g. --eval_config.SOFT_NMS=false --visual_image=true).
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_standalone_eval_gpu.sh DEVICE_ID RUN_MODE DATA_DIR LOAD_CHECKPOINT_PATH [--key=value ...]"
    echo "  DEVICE_ID             GPU id (as CUDA numbers them)"
    echo "  RUN_MODE              val | test"
    echo "  DATA_DIR              COCO root holding annotations/ and val2017/ (or test2017/)"
    echo "  LOAD_CHECKPOINT_PATH  checkpoint to evaluate"
}

TARGET=GPU
split_args "$@"
check_count 4 4
DEVICE_ID=${POSITIONAL[0]}
RUN_MODE=${POSITIONAL[1]}
DATA_DIR=$(real_path "${POSITIONAL[2]}")
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[3]}")
check_uint DEVICE_ID "$DEVICE_ID"
source "$(dirname "$0")/eval_common.sh"
