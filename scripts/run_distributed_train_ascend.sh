#!/bin/bash
# Data-parallel training on the Ascend devices of this server named in an HCCL rank table, in
# the background as the original (FOREGROUND=1 waits and exits with the job's status).
# ascend_distributed_launcher/get_distribute_train_cmd.py writes $OUTPUT_DIR/distributed_cmd.sh
# (one train.py per device with RANK_TABLE_FILE, RANK_SIZE, RANK_ID, DEVICE_ID and CPU-core
# binding; options from ascend_distributed_launcher/hyper_parameter_config.ini), which is run.
# Outputs: $OUTPUT_DIR/LOG<rank>/training_log.txt and .../ckpt_<rank>/ ($OUTPUT_DIR: current folder).
# MindSpore deprecates rank-table launching since 2.4: run_distributed_train_ascend_msrun.sh
# does the same through msrun without a rank table.
# Extra --key=value arguments after the positional ones are passed to train.py. See docs/training_ops.md.
source "$(dirname "$0")/common.sh"

usage() {
    echo "Usage: bash scripts/run_distributed_train_ascend.sh MINDRECORD_DATASET_PATH RANK_TABLE_FILE [LOAD_CHECKPOINT_PATH] [--key=value ...]"
    echo "  MINDRECORD_DATASET_PATH  folder of the MindRecord training files (scripts/convert_dataset_to_mindrecord.sh)"
    echo "  RANK_TABLE_FILE          HCCL rank table (json) naming the devices of every server"
    echo "  LOAD_CHECKPOINT_PATH     optional checkpoint to start from (\"\" for none)"
}

split_args "$@"
check_count 2 3
MINDRECORD_PATH=$(real_path "${POSITIONAL[0]}")
RANK_TABLE_FILE=$(real_path "${POSITIONAL[1]}")
LOAD_CHECKPOINT_PATH=$(real_path "${POSITIONAL[2]}")
check_mindrecord "$MINDRECORD_PATH"
check_file RANK_TABLE_FILE "$RANK_TABLE_FILE"
check_checkpoint "$LOAD_CHECKPOINT_PATH"
require_python
prepare_output
FOREGROUND=${FOREGROUND:-0}
LAUNCHER="$CENTERNET_ROOT/scripts/ascend_distributed_launcher"
CMD_FILE="$OUTPUT_DIR/distributed_cmd.sh"
# DEVICE_COUNT overrides the count of /dev/davinci* devices (as get_distribute_train_cmd.py's --device_count);
# SERVER_ID names this server in a multi-server table when none of its ids is an address of this host.
"$PYTHON" "$LAUNCHER/get_distribute_train_cmd.py" --hccl_config_path="$RANK_TABLE_FILE" \
    --mindrecord_dir="$MINDRECORD_PATH" --load_checkpoint_path="$LOAD_CHECKPOINT_PATH" \
    --run_script_path="$CENTERNET_ROOT/train.py" --hyper_parameter_config_path="$LAUNCHER/hyper_parameter_config.ini" \
    --output_dir="$OUTPUT_DIR" --cmd_file="$CMD_FILE" --python="$PYTHON" \
    ${DEVICE_COUNT:+--device_count="$DEVICE_COUNT"} ${SERVER_ID:+--server_id="$SERVER_ID"} -- "${EXTRA[@]}" || die "could not generate the launch commands" 2
run_job "$OUTPUT_DIR" "$OUTPUT_DIR/distributed_launcher.log" bash "$CMD_FILE"
