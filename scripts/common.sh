#!/bin/bash
# Helpers shared by the launch scripts (sourced, not run). Conventions of every script:
#   - positional arguments are checked (count, paths) and the usage is printed on error;
#   - arguments starting with "--" after them are passed to train.py/eval.py unchanged;
#   - relative paths are resolved against the directory the script is started from;
#   - outputs go to $OUTPUT_DIR (default: that directory), one LOG<rank> folder per process;
#   - FOREGROUND=1 waits for the job and exits with its status; FOREGROUND=0 starts it in the
#     background (nohup), checks it survives its first STARTUP_CHECK_S seconds (default 10),
#     and writes its exit status to <log folder>/exit_status when it ends.

CENTERNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The COCO training recipe (330 epochs), merged by the Ascend and GPU training launchers.
RECIPE_CONFIG="$CENTERNET_ROOT/coco_recipe_config.yaml"
PYTHON=${PYTHON:-python}

die_usage() {
    # die_usage MESSAGE: print the message and the script's usage, exit 2
    echo "error: $1" >&2
    usage >&2
    exit 2
}

die() {
    echo "error: $1" >&2
    exit "${2:-1}"
}

real_path() {
    # Absolute form of a path (which need not exist); empty stays empty.
    if [ -z "$1" ]; then
        echo ""
    elif [ "${1:0:1}" == "/" ]; then
        realpath -m "$1"
    else
        realpath -m "$PWD/$1"
    fi
}

split_args() {
    # split_args ARG...: fills POSITIONAL (arguments not starting with --) and EXTRA (the others)
    POSITIONAL=()
    EXTRA=()
    local arg
    for arg in "$@"; do
        if [ "${arg:0:2}" == "--" ]; then
            EXTRA+=("$arg")
        else
            POSITIONAL+=("$arg")
        fi
    done
}

check_count() {
    # check_count MIN MAX: the number of positional arguments lies in [MIN, MAX]
    local n=${#POSITIONAL[@]}
    if [ "$n" -lt "$1" ] || [ "$n" -gt "$2" ]; then
        if [ "$1" == "$2" ]; then
            die_usage "expected $1 arguments, got $n"
        fi
        die_usage "expected $1 to $2 arguments, got $n"
    fi
}

check_dir() {
    # check_dir NAME PATH
    [ -d "$2" ] || die_usage "$1 is not a folder: $2"
}

check_file() {
    # check_file NAME PATH
    [ -f "$2" ] || die_usage "$1 is not a file: $2"
}

check_uint() {
    # check_uint NAME VALUE [MIN]: a non-negative integer, at least MIN
    [[ "$2" =~ ^[0-9]+$ ]] || die_usage "$1 must be an integer, got '$2'"
    [ "$2" -ge "${3:-0}" ] || die_usage "$1 must be at least ${3:-0}, got $2"
}

check_mindrecord() {
    # check_mindrecord PATH: a folder holding MindRecord shards
    check_dir MINDRECORD_DATASET_PATH "$1"
    ls "$1"/*.mind* >/dev/null 2>&1 || die_usage "MINDRECORD_DATASET_PATH holds no MindRecord files (*.mind*): $1
       convert a COCO dataset first: bash scripts/convert_dataset_to_mindrecord.sh COCO_DIR MINDRECORD_DIR"
}

check_checkpoint() {
    # check_checkpoint PATH: empty ("" = none) or an existing file
    [ -z "$1" ] || [ -f "$1" ] || die_usage "LOAD_CHECKPOINT_PATH is not a file: $1 (give \"\" for none)"
}

require_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found on PATH: activate the environment with MindSpore"
}

require_msrun() {
    command -v msrun >/dev/null 2>&1 || die "msrun not found on PATH: it comes with MindSpore >= 2.3; activate the \
environment with MindSpore (msrun starts workers with the 'python' found on PATH)"
}

count_devices() {
    # count_devices Ascend|GPU: devices visible on this host, or empty when unknown
    case "$1" in
        Ascend) ls /dev/davinci[0-9]* 2>/dev/null | wc -l ;;
        GPU) command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -c "^GPU" ;;
    esac
}

check_device_count() {
    # check_device_count TARGET N: N devices must exist when the host's count can be read
    local have
    have=$(count_devices "$1")
    if [ -n "$have" ] && [ "$have" -gt 0 ] && [ "$2" -gt "$have" ]; then
        die_usage "$2 $1 devices requested but this host has $have"
    fi
}

prepare_output() {
    OUTPUT_DIR=$(real_path "${OUTPUT_DIR:-$PWD}")
    mkdir -p "$OUTPUT_DIR" || die "cannot create OUTPUT_DIR $OUTPUT_DIR"
}

run_job() {
    # run_job LOG_DIR LOG_FILE COMMAND...: run COMMAND (cwd LOG_DIR) with its output in LOG_FILE,
    # in the foreground or the background according to FOREGROUND.
    local log_dir=$1 log_file=$2
    shift 2
    mkdir -p "$log_dir"
    rm -f "$log_dir/exit_status"
    echo "command: $*" > "$log_file"
    if [ "${FOREGROUND}" == "1" ]; then
        echo "running in the foreground; log: $log_file"
        (cd "$log_dir" && "$@" >> "$log_file" 2>&1)
        local status=$?
        echo "$status" > "$log_dir/exit_status"
        if [ "$status" -ne 0 ]; then
            echo "error: the job failed with exit status $status; last lines of $log_file:" >&2
            tail -n 20 "$log_file" >&2
        fi
        return "$status"
    fi
    # trap '' HUP is nohup's effect, inherited by the job; the subshell then records the status.
    (trap '' HUP; cd "$log_dir" && "$@" >> "$log_file" 2>&1
     echo $? > "$log_dir/.exit_status" && mv "$log_dir/.exit_status" "$log_dir/exit_status") \
        </dev/null >/dev/null 2>&1 &
    local pid=$!
    echo "$pid" > "$log_dir/pid"
    check_started "$log_dir" "$log_file" "$pid"
}

check_started() {
    # check_started LOG_DIR LOG_FILE PID: fail if the background job ends badly within STARTUP_CHECK_S
    local log_dir=$1 log_file=$2 pid=$3 waited=0
    while [ "$waited" -lt "${STARTUP_CHECK_S:-10}" ] && kill -0 "$pid" 2>/dev/null; do
        sleep 1
        waited=$((waited + 1))
    done
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        local status
        status=$(cat "$log_dir/exit_status" 2>/dev/null || echo unknown)
        if [ "$status" != "0" ]; then
            echo "error: the job stopped at start with exit status $status; last lines of $log_file:" >&2
            tail -n 20 "$log_file" >&2
            return 1
        fi
        echo "the job finished within ${waited} s; log: $log_file"
        return 0
    fi
    echo "started in the background (pid $pid); follow it with: tail -f $log_file"
    echo "its exit status will be written to $log_dir/exit_status"
}

check_port_free() {
    # check_port_free PORT: nothing listens on 127.0.0.1:PORT
    check_uint MASTER_PORT "$1" 1024
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die_usage "MASTER_PORT $1 is in use on this host: set MASTER_PORT to a free port"
    fi
}

msrun_summary() {
    # msrun_summary STATUS: explain a failed msrun job (which rank died first, the end of each worker log)
    local status=$1 line pid code rank log
    echo "error: the distributed job failed (msrun exit status $status)."
    line=$(grep -m1 -o "Worker process [0-9]* exit with exception. Error code: -\?[0-9]*" "$MSRUN_LAUNCH_LOG" 2>/dev/null)
    if [ -n "$line" ]; then
        pid=$(echo "$line" | sed 's/Worker process \([0-9]*\) .*/\1/')
        code=$(echo "$line" | sed 's/.*Error code: //')
        rank=$(grep -l "pid $pid," "$OUTPUT_DIR"/LOG*/training_log.txt 2>/dev/null | head -n1 | sed 's#.*/LOG\([0-9]*\)/.*#\1#')
        if [ "$code" -lt 0 ] 2>/dev/null; then
            code="$code (killed by signal $((-code)))"
        fi
        echo "error: worker ${rank:+rank $rank, }pid $pid exited first, with code $code; msrun then stopped the others."
    elif grep -q "timed out" "$MSRUN_LAUNCH_LOG" 2>/dev/null; then
        echo "error: msrun's scheduler reports timed-out workers (a worker died or never joined the cluster)."
    fi
    for log in "$OUTPUT_DIR"/LOG*/training_log.txt; do
        [ -e "$log" ] || continue
        echo "---- last lines of $log (errors and the final line):"
        grep -E "ERROR|Error|error:|Traceback" "$log" | grep -v "^\[INFO\]" | tail -n 3
        tail -n 1 "$log"
    done
}

msrun_job() {
    # msrun_job MSRUN_ARGS...: run msrun; on failure append the summary; keep msrun's status
    msrun "$@"
    local status=$?
    if [ "$status" -ne 0 ]; then
        msrun_summary "$status"
    fi
    return "$status"
}

launch_msrun() {
    # launch_msrun TARGET SCRIPT_ARGS...: data-parallel train.py on WORKER_NUM local processes through msrun.
    # Uses WORKER_NUM, MINDRECORD_PATH, LOAD_CHECKPOINT_PATH, EXTRA and the environment:
    #   MASTER_PORT (8118), CLUSTER_TIME_OUT (300 s: how long workers wait for each other to join),
    #   BIND_CORE (msrun --bind_core, default False), MS_NODE_TIMEOUT (MindSpore's heartbeat timeout).
    local target=$1
    require_msrun
    require_python
    MASTER_PORT=${MASTER_PORT:-8118}
    check_port_free "$MASTER_PORT"
    check_uint CLUSTER_TIME_OUT "${CLUSTER_TIME_OUT:-300}" 1
    prepare_output
    local log_dir="$OUTPUT_DIR/msrun_log" i
    mkdir -p "$log_dir"
    for ((i = 0; i < WORKER_NUM; i++)); do
        mkdir -p "$OUTPUT_DIR/LOG$i"
        rm -f "$log_dir/worker_$i.log"
        ln -sfn "../msrun_log/worker_$i.log" "$OUTPUT_DIR/LOG$i/training_log.txt"
    done
    MSRUN_LAUNCH_LOG="$OUTPUT_DIR/msrun_launcher.log"
    echo "msrun: $WORKER_NUM workers on port $MASTER_PORT; per-rank logs: $OUTPUT_DIR/LOG<rank>/training_log.txt," \
        "checkpoints: $OUTPUT_DIR/LOG<rank>/ckpt_<rank>/"
    run_job "$OUTPUT_DIR" "$MSRUN_LAUNCH_LOG" msrun_job --worker_num="$WORKER_NUM" \
        --local_worker_num="$WORKER_NUM" --master_port="$MASTER_PORT" --log_dir="$log_dir" --join=True \
        --cluster_time_out="${CLUSTER_TIME_OUT:-300}" --bind_core="${BIND_CORE:-False}" \
        "$CENTERNET_ROOT/train.py" --distribute=true --device_target="$target" --device_num="$WORKER_NUM" \
        --mindrecord_dir="$MINDRECORD_PATH" --load_checkpoint_path="$LOAD_CHECKPOINT_PATH" \
        --save_checkpoint_path="$OUTPUT_DIR/LOG{rank}" "${DEFAULTS[@]}" "${EXTRA[@]}"
}

launch_standalone() {
    # launch_standalone TARGET DEVICE_ID: train.py on one device; outputs in $OUTPUT_DIR/LOG<DEVICE_ID>
    local target=$1 device_id=$2
    require_python
    prepare_output
    local log_dir="$OUTPUT_DIR/LOG$device_id"
    echo "standalone training on $target device $device_id; log: $log_dir/training_log.txt," \
        "checkpoints: $log_dir/ckpt_0/"
    run_job "$log_dir" "$log_dir/training_log.txt" env DEVICE_ID="$device_id" RANK_ID=0 RANK_SIZE=1 \
        "$PYTHON" "$CENTERNET_ROOT/train.py" --distribute=false --device_target="$target" --device_id="$device_id" \
        --mindrecord_dir="$MINDRECORD_PATH" --load_checkpoint_path="$LOAD_CHECKPOINT_PATH" \
        --save_checkpoint_path="$log_dir" "${DEFAULTS[@]}" "${EXTRA[@]}"
}
