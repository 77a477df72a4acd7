#!/bin/bash
# Convert a COCO-format dataset (annotations/instances_train2017.json + train2017/) into
# MindRecord shards for train.py. Runs in the foreground; the exit status is the converter's.
# Extra arguments are passed to src/dataset.py (e.g. --mindrecord_shards=16 --overwrite=true).

if [ $# -lt 2 ]; then
    echo "Usage: bash scripts/convert_dataset_to_mindrecord.sh COCO_DIR MINDRECORD_DIR [--key=value ...]"
    echo "  COCO_DIR        folder with annotations/instances_train2017.json and train2017/"
    echo "  MINDRECORD_DIR  output folder of the MindRecord shards (created if needed)"
    exit 2
fi

get_real_path() {
    if [ "${1:0:1}" == "/" ]; then
        echo "$1"
    else
        realpath -m "$PWD/$1"
    fi
}

COCO_DIR=$(get_real_path "$1")
MINDRECORD_DIR=$(get_real_path "$2")
shift 2

if [ ! -d "$COCO_DIR" ]; then
    echo "error: COCO_DIR is not a folder: $COCO_DIR" >&2
    exit 1
fi

BASE_PATH=$(cd "$(dirname "$0")/.." && pwd)
python "$BASE_PATH/src/dataset.py" --coco_data_dir="$COCO_DIR" --mindrecord_dir="$MINDRECORD_DIR" "$@"
