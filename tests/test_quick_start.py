"""scripts/run_quick_start.sh end to end (few steps) and quick_start_config.yaml.

The full-length run (900 steps, about 6.5 minutes on 2 idle cores) is measured by ``bench/run_all.py --only quick_start``;
here the same script runs with ``--train_steps=4`` so every stage and output is exercised.
"""
import json
import os
import subprocess
import sys

import pytest

from src.model_utils.config import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "run_quick_start.sh")


def _run(args, cwd):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", SCRIPT] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_quick_start_config_describes_a_small_consistent_cpu_run():
    cfg = get_config(["--config_path=%s" % os.path.join(ROOT, "quick_start_config.yaml")])
    assert cfg.device_target == "CPU"
    assert cfg.net_config.block_type == "BasicBlock" and cfg.net_config.block_class == [1, 1, 1, 1]
    assert cfg.dataset_config.num_classes == 5  # the synthetic dataset's categories
    assert list(cfg.export_config.input_res) == list(cfg.dataset_config.input_res_test)
    assert cfg.dataset_config.output_res == [r // cfg.net_config.down_ratio for r in cfg.dataset_config.input_res_train]
    assert cfg.train_steps > 0 and cfg.save_checkpoint_steps >= cfg.train_steps  # one checkpoint, at the end
    # untouched keys keep the defaults
    assert cfg.eval_config.K == 100 and cfg.net_config.head_conv == 64


def test_quick_start_runs_every_stage_and_says_where_the_outputs_are(tmp_path):
    out = tmp_path / "qs out"  # a space in the path on purpose
    done = _run([str(out), "--train_steps=4", "--eval_max_images=6"], str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "quick start finished" in text
    for stage in ("generating the synthetic dataset", "converting to MindRecord", "training", "evaluating",
                  "exporting MINDIR"):
        assert stage in text
    ckpt = out / "train" / "ckpt_0" / "checkpoint_centernet-1_4.ckpt"
    expected = [ckpt, out / "eval" / "metrics.json", out / "eval" / "results.json",
                out / "train" / "ckpt_0" / "loss_curve.png", out / "train" / "ckpt_0" / "training_log.csv",
                out / "centernet_quick_start.mindir"]
    for path in expected:
        assert path.is_file() and path.stat().st_size > 0, path
        assert str(path) in text  # the summary names it
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(["AP", "AP50", "AP75"]) <= set(metrics) and metrics["num_images"] == 6
    assert len(list((out / "eval" / "visual").glob("*_pred.png"))) == 6
    # a second run reuses the generated data and the MindRecord files
    again = _run([str(out), "--train_steps=2", "--eval_max_images=2"], str(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reusing the synthetic dataset" in again.stdout and "reusing the MindRecord files" in again.stdout


@pytest.mark.parametrize("args, message", [
    ([], "Usage: bash scripts/run_quick_start.sh OUT_DIR"),
    (["--train_steps=4"], "Usage: bash scripts/run_quick_start.sh OUT_DIR"),
    (["out", "extra"], "unexpected argument 'extra'"),
])
def test_bad_arguments_print_the_usage(tmp_path, args, message):
    done = _run(args, str(tmp_path))
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_failing_stage_stops_the_script_with_its_log(tmp_path):
    done = _run([str(tmp_path / "out"), "--train_config.batch_size=0"], str(tmp_path))
    assert done.returncode == 1
    assert "error: training" in done.stderr and "train.log" in done.stderr
    assert not (tmp_path / "out" / "centernet_quick_start.mindir").exists()
