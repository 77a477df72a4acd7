#!/bin/bash
# Evaluation on the CPU with eval.py, in the foreground (FOREGROUND=0: background).
# RUN_MODE val computes COCO mAP on DATA_DIR's val2017; test writes the test-dev results file.
# Outputs: $OUTPUT_DIR/LOG_EVAL0/eval_log.txt and the results below it ($OUTPUT_DIR: current
# folder). Extra --key=value arguments are passed to eval.py (e.g. --eval_max_images=50).
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_standalone_eval_cpu.sh RUN_MODE DATA_DIR LOAD_CHECKPOINT_PATH [--key=value ...]"
    echo "  RUN_MODE              val | test"
    echo "  DATA_DIR              COCO root holding annotations/ and val2017/ (or test2017/)"
    echo "  LOAD_CHECKPOINT_PATH  checkpoint to evaluate"
}

TARGET=CPU
split_args "$@"
check_count 3 3
DEVICE_ID=0
RUN_MODE=${POSITIONAL[0]}
DATA_DIR=$(real_path "${POSITIONAL[1]}")
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[2]}")
source "$(dirname "$0")/eval_common.sh"
