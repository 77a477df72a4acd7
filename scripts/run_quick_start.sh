#!/bin/bash
# The whole system on built-in data, on the CPU, in about 6.5 minutes on 2 idle cores:
#   1. generate the synthetic COCO-format dataset (tools/make_synthetic_coco.py)
#   2. convert its training split to MindRecord (src/dataset.py)
#   3. train the small CenterNet of quick_start_config.yaml (train.py)
#   4. evaluate it with COCO mAP and draw its detections on validation images (eval.py)
#   5. export it as MINDIR (export.py)
# Usage: bash scripts/run_quick_start.sh OUT_DIR [--key=value ...]
#   OUT_DIR       output folder (created; an existing quick-start folder is reused for its data)
#   --key=value   overrides passed to train.py, eval.py and export.py after quick_start_config.yaml
# PYTHON selects the interpreter (default: the project's .venv, see scripts/common.sh).
set -euo pipefail

usage() {
    echo "Usage: bash scripts/run_quick_start.sh OUT_DIR [--key=value ...]"
    echo "  OUT_DIR  folder for the data, checkpoint, metrics, loss curve, drawn detections and MINDIR"
}
if [ $# -lt 1 ] || [ "${1:0:2}" == "--" ] || [ "$1" == "-h" ]; then
    usage >&2
    exit 2
fi
for arg in "${@:2}"; do
    if [ "${arg:0:2}" != "--" ]; then
        echo "error: unexpected argument '$arg' (overrides are --key=value)" >&2
        usage >&2
        exit 2
    fi
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
shift
OVERRIDES=("$@")
source "$ROOT/scripts/common.sh"
require_python
CONFIG="$ROOT/quick_start_config.yaml"
DATA="$OUT/data"
LOGS="$OUT/logs"
mkdir -p "$LOGS"
cd "$ROOT"

# The synthetic dataset: 5 shape/colour classes on textured backgrounds (see tools/make_synthetic_coco.py).
# Its size and difficulty were chosen by measurement with the training settings of quick_start_config.yaml.
SYNTHETIC_ARGS=(--num_train 1000 --num_val 100 --seed 7 --min_side 128 --max_side 224 --min_obj 32 --max_obj 96
                --max_objects 4 --difficulty 0.2 --workers 2)

START=$(date +%s)
stage_start=$START
stage() {  # stage NAME LOG: run the rest, log to LOG, report its time, stop with the log's tail on failure
    local name=$1 log=$2
    shift 2
    echo "[$(date +%H:%M:%S)] $name ..."
    if ! "$@" > "$log" 2>&1; then
        echo "error: $name failed; end of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    local now
    now=$(date +%s)
    # The load average says whether the machine was shared while the stage ran (2 cores: above 2 is busy).
    echo "    done in $((now - stage_start)) s (load average $(cut -d' ' -f1-3 /proc/loadavg); log: $log)"
    stage_start=$now
}

if [ -f "$DATA/coco/annotations/instances_val2017.json" ]; then
    echo "reusing the synthetic dataset in $DATA/coco"
else
    stage "generating the synthetic dataset" "$LOGS/make_data.log" \
        "$PYTHON" tools/make_synthetic_coco.py --out "$DATA/coco" "${SYNTHETIC_ARGS[@]}"
fi
# Reuse the MindRecord files when the dataset of the configured mindrecord_prefix is complete there.
if "$PYTHON" -c 'import sys; from src.dataset import mindrecord_files; from src.model_utils.config import get_config
mindrecord_files(sys.argv[2], get_config(["--config_path=" + sys.argv[1]]).mindrecord_prefix)' \
        "$CONFIG" "$DATA/mindrecord" > /dev/null 2>&1; then
    echo "reusing the MindRecord files in $DATA/mindrecord"
else
    stage "converting to MindRecord" "$LOGS/convert.log" \
        "$PYTHON" src/dataset.py --config_path="$CONFIG" --coco_data_dir="$DATA/coco" --mindrecord_dir="$DATA/mindrecord"
fi

rm -rf "$OUT/train"
stage "training (progress: tail -f $LOGS/train.log)" "$LOGS/train.log" \
    "$PYTHON" train.py --config_path="$CONFIG" --mindrecord_dir="$DATA/mindrecord" --save_checkpoint_path="$OUT/train" \
    "${OVERRIDES[@]}"
CKPT=$("$PYTHON" -c "import sys; from src.utils import list_checkpoints; print(list_checkpoints(sys.argv[1])[-1])" \
       "$OUT/train/ckpt_0")

stage "evaluating on the validation images" "$LOGS/eval.log" \
    "$PYTHON" eval.py --config_path="$CONFIG" --data_dir="$DATA/coco" --load_checkpoint_path="$CKPT" \
    --save_result_dir="$OUT/eval" --visual_image=true "${OVERRIDES[@]}"

stage "exporting MINDIR" "$LOGS/export.log" \
    "$PYTHON" export.py --config_path="$CONFIG" --export_load_ckpt="$CKPT" --export_name="$OUT/centernet_quick_start" \
    "${OVERRIDES[@]}"

TOTAL=$(( $(date +%s) - START ))
"$PYTHON" - "$OUT" "$CKPT" "$TOTAL" <<'EOF'
import json, os, sys
out, ckpt, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(os.path.join(out, "eval", "metrics.json"), encoding="utf-8") as f:
    m = json.load(f)
visual = os.path.join(out, "eval", "visual")
print("\nquick start finished in %d min %02d s: AP %.3f, AP50 %.3f, AP75 %.3f on %d synthetic validation images"
      % (total // 60, total % 60, m["AP"], m["AP50"], m["AP75"], m.get("num_images", 0)))
for label, path in (("checkpoint", ckpt),
                    ("metrics", os.path.join(out, "eval", "metrics.json")),
                    ("detections (COCO json)", os.path.join(out, "eval", "results.json")),
                    ("loss curve", os.path.join(out, "train", "ckpt_0", "loss_curve.png")),
                    ("training log (CSV)", os.path.join(out, "train", "ckpt_0", "training_log.csv")),
                    ("drawn detections", visual + " (%d PNGs)" % len(os.listdir(visual)) if os.path.isdir(visual) else "-"),
                    ("MINDIR", os.path.join(out, "centernet_quick_start.mindir")),
                    ("logs", os.path.join(out, "logs"))):
    print("  %-24s %s" % (label, path))
EOF
