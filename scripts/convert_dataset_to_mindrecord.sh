#!/bin/bash
# Convert a COCO-format dataset (annotations/instances_train2017.json + train2017/) into
# MindRecord shards for train.py. Runs in the foreground; the exit status is the converter's.
# Extra --key=value arguments are passed to src/dataset.py (e.g. --mindrecord_shards=16 --overwrite=true).
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/convert_dataset_to_mindrecord.sh COCO_DIR MINDRECORD_DIR [--key=value ...]"
    echo "  COCO_DIR        folder with annotations/instances_train2017.json and train2017/"
    echo "  MINDRECORD_DIR  output folder of the MindRecord shards (created if needed)"
}

split_args "$@"
check_count 2 2
COCO_DIR=$(real_path "${POSITIONAL[0]}")
MINDRECORD_DIR=$(real_path "${POSITIONAL[1]}")
check_dir COCO_DIR "$COCO_DIR"
require_python
"$PYTHON" "$CENTERNET_ROOT/src/dataset.py" --coco_data_dir="$COCO_DIR" --mindrecord_dir="$MINDRECORD_DIR" "${EXTRA[@]}"
