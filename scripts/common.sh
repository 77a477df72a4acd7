#!/bin/bash
# Helpers shared by the launch scripts (sourced, not run). Conventions of every script:
#   - positional arguments are checked (count, paths) and the usage is printed on error;
#   - arguments starting with "--" after them are passed to train.py/eval.py unchanged;
#   - relative paths are resolved against the directory the script is started from;
#   - outputs go to $OUTPUT_DIR (default: that directory), one LOG<rank> folder per process;
#   - FOREGROUND=1 waits for the job and exits with its status; FOREGROUND=0 starts it in the
#     background (nohup), checks it survives its first STARTUP_CHECK_S seconds (default 10),
#     and writes its exit status to <log folder>/exit_status when it ends;
#   - the interpreter is $PYTHON when set, else the project's .venv (require_python).

CENTERNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The COCO training recipe (330 epochs), merged by the Ascend and GPU training launchers.
RECIPE_CONFIG="$CENTERNET_ROOT/coco_recipe_config.yaml"

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
    # Sets PYTHON (absolute) to $PYTHON when given, else the project's .venv/bin/python, else a
    # 'python' on PATH that has MindSpore, and puts its folder first on PATH (msrun and the INFER_APP
    # hook start 'python' from PATH). Without one: a one-line error naming the set-up script, exit 2.
    local setup="run: bash $CENTERNET_ROOT/scripts/setup_env.sh (creates .venv), or set PYTHON to an interpreter with MindSpore"
    local candidate=${PYTHON:-}
    if [ -n "$candidate" ]; then
        candidate=$(command -v "$candidate" 2>/dev/null) || die "PYTHON=$PYTHON is not an executable; $setup" 2
    elif [ -x "$CENTERNET_ROOT/.venv/bin/python" ]; then
        candidate="$CENTERNET_ROOT/.venv/bin/python"
    else
        candidate=$(command -v python 2>/dev/null) || candidate=""
        if [ -z "$candidate" ] || ! has_mindspore "$candidate"; then
            die "no Python environment with MindSpore found ($CENTERNET_ROOT/.venv is absent); $setup" 2
        fi
    fi
    [ "${candidate:0:1}" == "/" ] || candidate=$(real_path "$candidate")
    has_mindspore "$candidate" || die "$candidate cannot import mindspore; $setup" 2
    PYTHON=$candidate
    PATH="$(dirname "$PYTHON"):$PATH"
    # The project's packages (src, tools) importable by every Python step and the INFER_APP hook, as
    # the editable install of scripts/setup_env.sh makes them, whichever interpreter PYTHON names.
    PYTHONPATH="$CENTERNET_ROOT${PYTHONPATH:+:$PYTHONPATH}"
    export PATH PYTHON PYTHONPATH
}

has_mindspore() {
    # has_mindspore INTERPRETER: the interpreter runs and finds the mindspore package (without importing it)
    "$1" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('mindspore') is None)" >/dev/null 2>&1
}

require_msrun() {
    # After require_python: msrun and the 'python' it starts must come from PYTHON's folder.
    local bin_dir
    bin_dir=$(dirname "$PYTHON")
    [ -x "$bin_dir/python" ] || die "msrun starts workers with 'python' from PATH, but $bin_dir has no 'python': \
set PYTHON to the bin/python of an environment with MindSpore" 2
    command -v msrun >/dev/null 2>&1 || die "msrun not found in $bin_dir nor on PATH: it comes with MindSpore >= 2.3; \
run bash $CENTERNET_ROOT/scripts/setup_env.sh" 2
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
    # check_port_free ADDR PORT: nothing listens on ADDR:PORT
    check_uint MASTER_PORT "$2" 1024
    [ "$2" -le 65535 ] || die_usage "MASTER_PORT must be at most 65535, got $2"
    if timeout 5 bash -c "exec 3<>'/dev/tcp/$1/$2'" 2>/dev/null; then
        die_usage "MASTER_PORT $2 is in use on $1: set MASTER_PORT to a free port"
    fi
}

check_hosts() {
    # Reads the multi-host environment of the msrun launchers (same command on every host):
    #   LOCAL_WORKER_NUM (default WORKER_NUM: one host), NODE_RANK (0), MASTER_ADDR (127.0.0.1), MASTER_PORT (8118).
    # Sets NODE_NUM and FIRST_RANK (global rank of this host's first worker); exit 2 on a bad value.
    LOCAL_WORKER_NUM=${LOCAL_WORKER_NUM:-$WORKER_NUM}
    NODE_RANK=${NODE_RANK:-0}
    MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
    MASTER_PORT=${MASTER_PORT:-8118}
    check_uint LOCAL_WORKER_NUM "$LOCAL_WORKER_NUM" 1
    if [ $((WORKER_NUM % LOCAL_WORKER_NUM)) -ne 0 ]; then
        die_usage "LOCAL_WORKER_NUM=$LOCAL_WORKER_NUM does not divide the total $WORKER_NUM_NAME=$WORKER_NUM \
(every host runs the same number of workers)"
    fi
    NODE_NUM=$((WORKER_NUM / LOCAL_WORKER_NUM))
    check_uint NODE_RANK "$NODE_RANK"
    [ "$NODE_RANK" -lt "$NODE_NUM" ] || die_usage "NODE_RANK=$NODE_RANK but the job has $NODE_NUM host(s) \
($WORKER_NUM_NAME=$WORKER_NUM / LOCAL_WORKER_NUM=$LOCAL_WORKER_NUM): NODE_RANK must be 0 to $((NODE_NUM - 1))"
    # msrun resolves MASTER_ADDR to an IPv4 address the same way.
    "$PYTHON" -c "import socket, sys; socket.gethostbyname(sys.argv[1])" "$MASTER_ADDR" >/dev/null 2>&1 || \
        die_usage "MASTER_ADDR '$MASTER_ADDR' does not resolve to an IPv4 address: give the address or host name of \
the NODE_RANK=0 host"
    check_uint MASTER_PORT "$MASTER_PORT" 1024
    # The NODE_RANK=0 host runs msrun's scheduler on MASTER_PORT; the other hosts connect to it.
    [ "$NODE_RANK" -ne 0 ] || check_port_free "$MASTER_ADDR" "$MASTER_PORT"
    FIRST_RANK=$((NODE_RANK * LOCAL_WORKER_NUM))
}

log_rank_of_pid() {
    # log_rank_of_pid PID: the rank whose training log names PID (train.py logs "rank R of N, pid P,")
    grep -l "pid $1," "$OUTPUT_DIR"/LOG*/training_log.txt 2>/dev/null | head -n1 | sed 's#.*/LOG\([0-9]*\)/.*#\1#'
}

msrun_summary() {
    # msrun_summary STATUS: the end of this host's worker logs, then which rank (and host) died first.
    # A worker killed by a signal or failing on its own error died first; one whose collective
    # communication failed or whose cluster broke or never formed is a consequence. Then, on the
    # NODE_RANK=0 host, the scheduler log names the first rank that stopped responding, with its host
    # name and address.
    local status=$1 line pid code rank log host sched="$OUTPUT_DIR/msrun_log/scheduler.log" first="" consequence=""
    host=$(hostname)
    while read -r line; do
        [ -n "$line" ] || continue
        pid=$(echo "$line" | sed 's/Worker process \([0-9]*\) .*/\1/')
        code=$(echo "$line" | sed 's/.*Error code: \(-\?[0-9]*\).*/\1/')
        rank=$(log_rank_of_pid "$pid")
        if [ "$code" -lt 0 ] 2>/dev/null; then
            code="$code (killed by signal $((-code)))"
        fi
        if [ "${code%% *}" -ge 0 ] 2>/dev/null && [ -n "$rank" ] && grep -q -e "The state of the cluster is error" \
                -e "not successfully spawned" -e "CollectiveWait" -e "RunRingAllReduce" -e "KernelMod launch failed" \
                "$OUTPUT_DIR/LOG$rank/training_log.txt"; then
            consequence+="${consequence:+, }rank $rank (pid $pid)"
        elif [ -z "$first" ]; then
            first="worker ${rank:+rank $rank, }pid $pid exited first, with code $code, on host $host"
        fi
    done < <(grep -o "Worker process [0-9]* exit with exception. Error code: -\?[0-9]*" "$MSRUN_LAUNCH_LOG" 2>/dev/null)
    if [ -z "$first" ] && [ -f "$sched" ]; then
        rank=$(grep -m1 -o "worker [0-9]* is the first one timed out" "$sched" | sed 's/worker \([0-9]*\) .*/\1/')
        [ -n "$rank" ] || rank=$(grep -m1 -o "The node: [0-9]* is timed out" "$sched" | sed 's/[^0-9]*\([0-9]*\).*/\1/')
        if [ -n "$rank" ]; then
            line=$(grep -m1 -o "The new node: $rank(role: MS_WORKER).*hostname: [^,]*, ip: [0-9.]*" "$sched")
            first="rank $rank${line:+ on host $(echo "$line" | sed 's/.*hostname: \([^,]*\), ip: \(.*\)/\1 (\2)/')}"
            first+=" stopped responding first (msrun's scheduler lost its heartbeat)"
        fi
    fi
    for log in "$OUTPUT_DIR"/LOG*/training_log.txt; do
        [ -e "$log" ] || continue
        echo "---- last lines of $log (errors and the final line):"
        grep -E "ERROR|Error|error:|Traceback" "$log" | grep -v "^\[INFO\]" | tail -n 3
        tail -n 1 "$log"
    done
    if [ -n "$first" ]; then
        echo "error: $first; the other ranks were then stopped."
    elif [ -n "$consequence" ]; then
        echo "error: another host's rank failed first (see the launcher output on the NODE_RANK=0 host, $MASTER_ADDR)."
    fi
    [ -z "$consequence" ] || echo "error: $consequence on this host stopped because the cluster broke."
    echo "error: the distributed job failed on host $host (NODE_RANK=$NODE_RANK; msrun exit status $status)."
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
    # launch_msrun TARGET: data-parallel train.py through msrun, WORKER_NUM workers in total over
    # WORKER_NUM / LOCAL_WORKER_NUM hosts (check_hosts). Uses WORKER_NUM, WORKER_NUM_NAME (the name of
    # the positional argument), MINDRECORD_PATH, LOAD_CHECKPOINT_PATH, DEFAULTS, EXTRA and the environment:
    #   CLUSTER_TIME_OUT (300 s: how long workers wait for each other to join), BIND_CORE (msrun
    #   --bind_core, default False), MS_NODE_TIMEOUT (MindSpore's heartbeat timeout).
    # This host's workers have the global ranks FIRST_RANK .. FIRST_RANK + LOCAL_WORKER_NUM - 1.
    local target=$1
    require_python
    require_msrun
    check_hosts
    if [ "$target" == "CPU" ]; then
        [ "$LOCAL_WORKER_NUM" -le "$(nproc)" ] || \
            echo "warning: $LOCAL_WORKER_NUM workers on $(nproc) CPU cores: they will share cores" >&2
    else
        check_device_count "$target" "$LOCAL_WORKER_NUM"
    fi
    check_uint CLUSTER_TIME_OUT "${CLUSTER_TIME_OUT:-300}" 1
    prepare_output
    local log_dir="$OUTPUT_DIR/msrun_log" rank
    mkdir -p "$log_dir"
    for ((rank = FIRST_RANK; rank < FIRST_RANK + LOCAL_WORKER_NUM; rank++)); do
        mkdir -p "$OUTPUT_DIR/LOG$rank"
        rm -f "$log_dir/worker_$rank.log"
        ln -sfn "../msrun_log/worker_$rank.log" "$OUTPUT_DIR/LOG$rank/training_log.txt"
    done
    MSRUN_LAUNCH_LOG="$OUTPUT_DIR/msrun_launcher.log"
    echo "msrun: host $NODE_RANK of $NODE_NUM ($(hostname)), ranks $FIRST_RANK-$((FIRST_RANK + LOCAL_WORKER_NUM - 1))" \
        "of $WORKER_NUM, scheduler $MASTER_ADDR:$MASTER_PORT; per-rank logs: $OUTPUT_DIR/LOG<rank>/training_log.txt," \
        "checkpoints: $OUTPUT_DIR/LOG<rank>/ckpt_<rank>/"
    run_job "$OUTPUT_DIR" "$MSRUN_LAUNCH_LOG" msrun_job --worker_num="$WORKER_NUM" \
        --local_worker_num="$LOCAL_WORKER_NUM" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
        --node_rank="$NODE_RANK" --log_dir="$log_dir" --join=True \
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
