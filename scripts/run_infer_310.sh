#!/bin/bash
# CenterNet inference on an Ascend 310: preprocess -> C++ app (MINDIR) -> postprocess.
#
#   bash scripts/run_infer_310.sh MINDIR_PATH DATASET_PATH PREPROCESS_IMAGES [DEVICE_ID]
#
# MINDIR_PATH        model exported by export.py (its input size = export_config.input_res)
# DATASET_PATH       COCO root: annotations/instances_val2017.json and val2017/
# PREPROCESS_IMAGES  y: (re)write ./preprocess_Result from the images; n: reuse ./preprocess_Result
# DEVICE_ID          Ascend device id (optional, default 0)
#
# Everything is written to the current folder: preprocess_Result/ (images/<image_id>.bin inputs,
# meta/<image_id>.json), result_Files/<image_id>_0.bin (detections), time_Result/, results.json,
# metrics.json, acc.log (the COCO table) and the logs preprocess.log, build.log, infer.log,
# postprocess.log. Exits 2 on bad arguments (with the usage) and 1 when a step fails, naming its log.
#
# Environment hooks:
#   PYTHON       interpreter for the Python steps (default: the project's .venv, see scripts/common.sh)
#   CONFIG_PATH  yaml merged onto default_config.yaml for preprocess/postprocess (class count,
#                export_config.input_res...): it must describe the exported model
#   INFER_APP    inference command used instead of building ascend310_infer (no Ascend needed), e.g.
#                INFER_APP="python tools/infer_mindir.py --device_target=CPU" runs the MINDIR on CPU
#                ('python' is the interpreter above: its folder comes first on PATH)
#   MINDSPORE_PATH / BUILD_DIR  passed to ascend310_infer/build.sh
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_infer_310.sh MINDIR_PATH DATASET_PATH PREPROCESS_IMAGES [DEVICE_ID]"
    echo "  MINDIR_PATH        model exported by export.py"
    echo "  DATASET_PATH       COCO root with annotations/instances_val2017.json and val2017/"
    echo "  PREPROCESS_IMAGES  y: (re)write ./preprocess_Result; n: reuse it"
    echo "  DEVICE_ID          Ascend device id (default 0)"
}

split_args "$@"
check_count 3 4
[ "${#EXTRA[@]}" -eq 0 ] || die_usage "unexpected argument '${EXTRA[0]}' (this script takes no --key=value options)"
model=$(real_path "${POSITIONAL[0]}")
dataset_path=$(real_path "${POSITIONAL[1]}")
preprocess_images=${POSITIONAL[2]}
device_id=${POSITIONAL[3]:-0}
check_file MINDIR_PATH "$model"
check_dir DATASET_PATH "$dataset_path"
case "$preprocess_images" in
    y|n) ;;
    *) die_usage "PREPROCESS_IMAGES must be y or n, got '$preprocess_images'" ;;
esac
[[ "$device_id" =~ ^[0-9]+$ ]] || die_usage "DEVICE_ID must be a non-negative integer, got '$device_id'"
config_args=()
if [ -n "$CONFIG_PATH" ]; then
    config_file=$(real_path "$CONFIG_PATH")
    [ -f "$config_file" ] || die "CONFIG_PATH is not a file: $config_file" 2
    config_args=("--config_path=$config_file")
fi
if [ "$preprocess_images" == "n" ] && { [ ! -d ./preprocess_Result/images ] || [ ! -d ./preprocess_Result/meta ]; }; then
    die "PREPROCESS_IMAGES=n but $PWD/preprocess_Result has no images/ and meta/: run with y first" 2
fi
require_python
root=$CENTERNET_ROOT

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
    "$PYTHON" "$root/preprocess.py" --val_data_dir="$dataset_path" --run_mode=val \
        --pre_result_path=./preprocess_Result "${config_args[@]}" &> preprocess.log
}

compile_app() {
    PYTHON="$PYTHON" bash "$root/ascend310_infer/build.sh" &> build.log
}

infer() {
    rm -rf ./result_Files ./time_Result
    mkdir -p ./result_Files ./time_Result
    "${app_cmd[@]}" --mindir_path="$model" --input_path=./preprocess_Result/images \
        --output_path=./result_Files --device_id="$device_id" &> infer.log
}

cal_acc() {
    "$PYTHON" "$root/postprocess.py" --val_data_dir="$dataset_path" --run_mode=val \
        --pre_result_path=./preprocess_Result --result_path=./result_Files --save_result_dir=. \
        "${config_args[@]}" &> postprocess.log
}

if [ "$preprocess_images" == "y" ]; then
    if ! preprocess_data; then
        echo "error: preprocess failed, see $PWD/preprocess.log" >&2
        exit 1
    fi
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
