#!/bin/bash
# The checks and launch shared by run_standalone_eval_*.sh (sourced after they read their arguments:
# TARGET, DEVICE_ID, RUN_MODE, DATA_DIR, LOAD_CHECKPOINT_PATH, EXTRA).
case "$RUN_MODE" in
    val|test) ;;
    *) die_usage "RUN_MODE must be val or test, got '$RUN_MODE'" ;;
esac
check_dir DATA_DIR "$DATA_DIR"
[ -n "$LOAD_CHECKPOINT_PATH" ] || die_usage "LOAD_CHECKPOINT_PATH is required"
check_file LOAD_CHECKPOINT_PATH "$LOAD_CHECKPOINT_PATH"
[ "$TARGET" == "CPU" ] || check_device_count "$TARGET" $((DEVICE_ID + 1))
require_python
[ -f "$CENTERNET_ROOT/eval.py" ] || die "eval.py not found in $CENTERNET_ROOT"
prepare_output
FOREGROUND=${FOREGROUND:-1}
LOG_DIR="$OUTPUT_DIR/LOG_EVAL$DEVICE_ID"
echo "evaluating $LOAD_CHECKPOINT_PATH ($RUN_MODE) on $TARGET; log: $LOG_DIR/eval_log.txt"
run_job "$LOG_DIR" "$LOG_DIR/eval_log.txt" env DEVICE_ID="$DEVICE_ID" "$PYTHON" "$CENTERNET_ROOT/eval.py" \
    --device_target="$TARGET" --device_id="$DEVICE_ID" --run_mode="$RUN_MODE" --data_dir="$DATA_DIR" \
    --load_checkpoint_path="$LOAD_CHECKPOINT_PATH" --save_result_dir="$LOG_DIR" "${EXTRA[@]}"
