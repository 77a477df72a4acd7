#!/bin/bash
# AP of the quick start with and without EMA, from one training run: the EMA does not feed back
# into training, so the raw weights of an EMA run are the weights of the same run without EMA.
# Trains with scripts/run_quick_start.sh (which evaluates the EMA weights: eval_weights auto),
# then evaluates the same checkpoint's raw weights.
# Usage: bash bench/ema_quick_start.sh OUT_DIR [--key=value ...]   (extra overrides go to both)
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "Usage: bash bench/ema_quick_start.sh OUT_DIR [--key=value ...]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$1
shift
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
EMA=(--train_config.ema=true --train_config.ema_decay=0.99 --train_config.ema_tau=50)
bash "$ROOT/scripts/run_quick_start.sh" "$OUT" "${EMA[@]}" "$@"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
CKPT=$("$PYTHON" -c "import sys; from src.utils import list_checkpoints; print(list_checkpoints(sys.argv[1])[-1])" \
       "$OUT/train/ckpt_0")
"$PYTHON" eval.py --config_path=quick_start_config.yaml --data_dir="$OUT/data/coco" --load_checkpoint_path="$CKPT" \
    --save_result_dir="$OUT/eval_raw" --eval_weights=raw "$@" > "$OUT/logs/eval_raw.log" 2>&1
"$PYTHON" - "$OUT" <<'PY'
import json, os, sys
for label, folder in (("EMA weights", "eval"), ("raw weights", "eval_raw")):
    with open(os.path.join(sys.argv[1], folder, "metrics.json"), encoding="utf-8") as f:
        m = json.load(f)
    print("%-12s AP %.3f  AP50 %.3f  AP75 %.3f" % (label, m["AP"], m["AP50"], m["AP75"]))
PY
