#!/bin/bash
# CenterNet inference on an Ascend 310: preprocess -> C++ app (MINDIR) -> postprocess.
#
#   bash scripts/run_infer_310.sh [MINDIR_PATH] [DATASET_PATH] [PREPROCESS_IMAGES] [DEVICE_ID]
#
# MINDIR_PATH        model exported by export.py (its input size = export_config.input_res)
# DATASET_PATH       COCO root: annotations/instances_val2017.json and val2017/
# PREPROCESS_IMAGES  y: (re)write ./preprocess_Result from the images; n: reuse ./preprocess_Result
# DEVICE_ID          Ascend device id (optional, default 0)
#
# Everything is written to the current folder: preprocess_Result/ (images/<image_id>.bin inputs,
# meta/<image_id>.json), result_Files/<image_id>_0.bin (detections), time_Result/, results.json,
# metrics.json, acc.log (the COCO table) and the logs preprocess.log, build.log, infer.log,
# postprocess.log. Exits non-zero when a step fails, naming its log.
#
# Environment hooks:
#   PYTHON       interpreter for the Python steps (default python3)
#   CONFIG_PATH  yaml merged onto default_config.yaml for preprocess/postprocess (class count,
#                export_config.input_res...): it must describe the exported model
#   INFER_APP    inference command used instead of building ascend310_infer (no Ascend needed), e.g.
#                INFER_APP="python tools/infer_mindir.py --device_target=CPU" runs the MINDIR on CPU
#   MINDSPORE_PATH / BUILD_DIR  passed to ascend310_infer/build.sh

usage() {
    echo "Usage: bash run_infer_310.sh [MINDIR_PATH] [DATASET_PATH] [PREPROCESS_IMAGES] [DEVICE_ID]"
    echo "  PREPROCESS_IMAGES must be y or n; DEVICE_ID is optional (default 0)"
}

if [[ $# -lt 3 || $# -gt 4 ]]; then
    usage
    exit 1
fi

get_real_path() {
    if [ "${1:0:1}" == "/" ]; then
        echo "$1"
    else
        realpath -m "$PWD/$1"
    fi
}

model=$(get_real_path "$1")
dataset_path=$(get_real_path "$2")
preprocess_images=$3
device_id=${4:-0}

if [ ! -f "$model" ]; then
    echo "error: MINDIR_PATH=$model is not a file" >&2
    exit 1
fi
if [ ! -d "$dataset_path" ]; then
    echo "error: DATASET_PATH=$dataset_path is not a folder" >&2
    exit 1
fi
if [ "$preprocess_images" != "y" ] && [ "$preprocess_images" != "n" ]; then
    echo "error: PREPROCESS_IMAGES must be y or n, got '$preprocess_images'" >&2
    exit 1
fi
if ! [[ "$device_id" =~ ^[0-9]+$ ]]; then
    echo "error: DEVICE_ID must be a non-negative integer, got '$device_id'" >&2
    exit 1
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python_bin=${PYTHON:-python3}
config_args=()
if [ -n "$CONFIG_PATH" ]; then
    config_file=$(get_real_path "$CONFIG_PATH")
    if [ ! -f "$config_file" ]; then
        echo "error: CONFIG_PATH=$config_file is not a file" >&2
        exit 1
    fi
    config_args=("--config_path=$config_file")
fi

echo "mindir: $model"
echo "dataset: $dataset_path"
echo "preprocess images: $preprocess_images"
echo "device id: $device_id"

if [ -z "$INFER_APP" ]; then
    # The CANN toolkit environment, when installed in its usual place.
    for env_script in "${ASCEND_HOME:-/usr/local/Ascend}/ascend-toolkit/set_env.sh" \
                      "${ASCEND_HOME:-/usr/local/Ascend}/latest/bin/setenv.bash"; do
        if [ -f "$env_script" ]; then
            # shellcheck disable=SC1090
            source "$env_script"
            break
        fi
    done
fi

preprocess_data() {
    rm -rf ./preprocess_Result
    "$python_bin" "$root/preprocess.py" --val_data_dir="$dataset_path" --run_mode=val \
        --pre_result_path=./preprocess_Result "${config_args[@]}" &> preprocess.log
}

compile_app() {
    PYTHON="$python_bin" bash "$root/ascend310_infer/build.sh" &> build.log
}

infer() {
    rm -rf ./result_Files ./time_Result
    mkdir -p ./result_Files ./time_Result
    "${app_cmd[@]}" --mindir_path="$model" --input_path=./preprocess_Result/images \
        --output_path=./result_Files --device_id="$device_id" &> infer.log
}

cal_acc() {
    "$python_bin" "$root/postprocess.py" --val_data_dir="$dataset_path" --run_mode=val \
        --pre_result_path=./preprocess_Result --result_path=./result_Files --save_result_dir=. \
        "${config_args[@]}" &> postprocess.log
}

if [ "$preprocess_images" == "y" ]; then
    if ! preprocess_data; then
        echo "error: preprocess failed, see $PWD/preprocess.log" >&2
        exit 1
    fi
elif [ ! -d ./preprocess_Result/images ] || [ ! -d ./preprocess_Result/meta ]; then
    echo "error: PREPROCESS_IMAGES=n but $PWD/preprocess_Result has no images/ and meta/: run with y first" >&2
    exit 1
fi

if [ -n "$INFER_APP" ]; then
    read -r -a app_cmd <<< "$INFER_APP"
    echo "inference command (INFER_APP): ${app_cmd[*]}"
else
    if ! compile_app; then
        echo "error: building ascend310_infer failed, see $PWD/build.log" >&2
        exit 1
    fi
    app_cmd=("${BUILD_DIR:-$root/ascend310_infer/out}/main")
fi

if ! infer; then
    echo "error: inference failed, see $PWD/infer.log" >&2
    exit 1
fi
if ! cal_acc; then
    echo "error: postprocess failed, see $PWD/postprocess.log" >&2
    exit 1
fi
cat acc.log
