"""Exact resume, SIGTERM and SIGKILL safety of train.py (real training runs in subprocesses).

Exactness is checked bitwise: with --deterministic=true on CPU the same data (it derives from
(seed, epoch, rank, position) only) meets the same kernels in the same order, so an
interrupted and resumed run must reproduce every bit of an uninterrupted one. A tolerance
would only be needed with non-deterministic kernels (atomics on GPU/Ascend).
"""
import glob
import os
import random
import signal
import subprocess
import textwrap
import time

import mindspore as ms
import numpy as np
import pytest

import train
from testkit.ops_support import PYTHON, ROOT, TINY, csv_rows, env, finish, read_csv, read_text, start_train, wait_for
from src.model_utils.config import get_config
from src.train.trainer import Trainer
from src.model_utils.file_io import remove_stale_temporaries
from src.utils import (checkpoint_name, checkpoint_position, list_checkpoints, load_train_state, read_checkpoint,
                       save_checkpoint_atomic)

# Warm-up then polynomial decay: every step has its own learning rate, so a schedule restarted
# at the wrong step would show in the lr column.
SCHEDULE = ["--train_config.lr_schedule=PolyDecay", "--train_config.PolyDecay.learning_rate=1e-3",
            "--train_config.PolyDecay.warmup_steps=2", "--deterministic=true"]


def _args(data, out, *extra):
    return TINY + SCHEDULE + ["--mindrecord_dir=%s" % data, "--save_checkpoint_path=%s" % out] + list(extra)


def _values(path):
    return {k: np.asarray(v.asnumpy()) for k, v in ms.load_checkpoint(path).items()}


def _assert_same_checkpoint(path_a, path_b):
    a, b = _values(path_a), _values(path_b)
    assert set(a) == set(b)
    differing = [k for k in a if a[k].dtype != b[k].dtype or not np.array_equal(a[k], b[k])]
    assert not differing, "parameters differ between %s and %s: %s" % (path_a, path_b, differing[:8])
    names = set(a)
    assert any(n.startswith("moment1.") for n in names) and {"global_step", "scale_sense", "data_step"} <= names
    return a


def train_full_and_split(make_args, tmp_path, steps):
    """Train ``steps`` steps in one run (tmp_path/full) and, beside it, as steps/2 + resume + steps/2
    (tmp_path/split; logs first.log, second.log), checkpoints every steps/2."""
    half = steps // 2
    common = ["--train_steps=%d" % steps, "--save_checkpoint_steps=%d" % half, "--save_checkpoint_num=5"]
    full = start_train(make_args(tmp_path / "full", *common), tmp_path / "full.log")
    first = start_train(make_args(tmp_path / "split", *common, "--stop_at_step=%d" % half), tmp_path / "first.log")
    assert finish(first, 300) == 0, read_text(tmp_path / "first.log")[-3000:]
    second = start_train(make_args(tmp_path / "split", *common, "--resume=true"), tmp_path / "second.log")
    assert finish(full, 300) == 0, read_text(tmp_path / "full.log")[-3000:]
    assert finish(second, 300) == 0, read_text(tmp_path / "second.log")[-3000:]


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(synthetic_mindrecord, tmp_path):
    data = synthetic_mindrecord.mindrecord_dir
    train_full_and_split(lambda out, *extra: _args(data, out, *extra), tmp_path, 6)

    log = read_text(tmp_path / "second.log")
    assert "checkpoint_centernet-1_3.ckpt at step 3 of 6" in log  # resumed where the first part stopped
    full_dir, split_dir = tmp_path / "full" / "ckpt_0", tmp_path / "split" / "ckpt_0"
    for name in ("checkpoint_centernet-1_3.ckpt", "checkpoint_centernet-1_6.ckpt"):
        values = _assert_same_checkpoint(str(full_dir / name), str(split_dir / name))
    assert int(values["global_step"].reshape(-1)[0]) == 6 and int(values["data_step"]) == 6

    full_rows, split_rows = read_csv(full_dir / "training_log.csv"), read_csv(split_dir / "training_log.csv")
    assert [int(r["step"]) for r in split_rows] == [1, 2, 3, 4, 5, 6]
    for key in ("lr", "loss", "hm_loss", "wh_loss", "off_loss", "loss_scale"):
        assert [r[key] for r in full_rows] == [r[key] for r in split_rows], key
    lrs = [float(r["lr"]) for r in full_rows]
    assert len(set(lrs)) == 6  # warm-up and decay: a distinct rate per step


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(synthetic_mindrecord, tmp_path):
    out = tmp_path / "run"
    proc = start_train(TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=500",
                               "--save_checkpoint_path=%s" % out, "--save_checkpoint_steps=1000"],
                       tmp_path / "run.log")
    csv_path = out / "ckpt_0" / "training_log.csv"
    try:
        assert wait_for(lambda: csv_rows(csv_path) >= 2, 240, proc=proc), read_text(tmp_path / "run.log")[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        finish(proc, 5)
    log = read_text(tmp_path / "run.log")
    assert "stop requested (SIGTERM)" in log
    last_step = int(read_csv(csv_path)[-1]["step"])
    paths = list_checkpoints(str(out / "ckpt_0"))
    assert len(paths) == 1 and last_step < 500
    saved = read_checkpoint(paths[0])
    assert int(saved["data_step"].asnumpy()) == last_step
    assert int(saved["global_step"].asnumpy().reshape(-1)[0]) == last_step


def _newest_loads(folder):
    """The newest complete checkpoint of ``folder`` reads as a full training state; returns its step."""
    paths = list_checkpoints(folder)
    assert paths, "no checkpoint in %s" % folder
    saved = read_checkpoint(paths[-1])  # raises CheckpointError for a truncated file
    assert any(k.startswith("moment2.") for k in saved)
    return int(saved["data_step"].asnumpy())


def test_sigkill_at_random_moments_never_leaves_a_broken_newest_checkpoint(synthetic_mindrecord, tmp_path):
    """Checkpoint every step, kill -9 at random moments (some land inside a save), resume, repeat."""
    rng = random.Random(1234)
    out = tmp_path / "run"
    folder = str(out / "ckpt_0")
    base = TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=400",
                   "--save_checkpoint_path=%s" % out, "--save_checkpoint_steps=1", "--save_checkpoint_num=2"]
    step, mid_save = 0, 0
    for cycle in range(2):
        args = base + (["--resume=true"] if cycle else [])
        proc = start_train(args, tmp_path / ("run%d.log" % cycle))
        try:
            assert wait_for(lambda: list_checkpoints(folder) and _step_of(folder) > step, 240, proc=proc), \
                read_text(tmp_path / ("run%d.log" % cycle))[-3000:]
            time.sleep(rng.uniform(0.0, 2.0))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            finish(proc, 5)
        mid_save += bool(glob.glob(os.path.join(folder, ".tmp-*")))
        new_step = _newest_loads(folder)
        assert new_step > step
        step = new_step
    print("kills that interrupted a save: %d of 2" % mid_save)
    remove_stale_temporaries(folder)
    assert not glob.glob(os.path.join(folder, ".tmp-*"))


def _step_of(folder, steps_per_epoch=12):
    """Global step of the newest checkpoint's name (24 images, batch 2: 12 steps per epoch)."""
    epoch, in_epoch = checkpoint_position(list_checkpoints(folder)[-1])
    return (epoch - 1) * steps_per_epoch + in_epoch


KILL_DURING_SAVE = textwrap.dedent("""
    import sys, time
    import mindspore as ms
    from mindspore import nn
    from src import utils
    net = nn.Dense(64, 64)
    utils.save_checkpoint_atomic(net, sys.argv[1] + "/checkpoint_centernet-1_1.ckpt")
    real_save = ms.save_checkpoint
    def half_save(cell, path, **kwargs):  # writes a truncated file, then hangs: the kill lands mid-save
        real_save(cell, path, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(100)
        print("SAVING", flush=True)
        time.sleep(600)
    ms.save_checkpoint = half_save
    utils.save_checkpoint_atomic(net, sys.argv[1] + "/checkpoint_centernet-1_2.ckpt")
""")


def test_kill_inside_a_save_keeps_the_previous_checkpoint_newest(tmp_path):
    proc = subprocess.Popen([PYTHON, "-c", KILL_DURING_SAVE, str(tmp_path)], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "SAVING"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    temporaries = glob.glob(str(tmp_path / ".tmp-*"))
    assert len(temporaries) == 1 and os.path.getsize(temporaries[0]) == 100
    paths = list_checkpoints(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["checkpoint_centernet-1_1.ckpt"]
    assert "weight" in read_checkpoint(paths[-1])
    remove_stale_temporaries(str(tmp_path))
    assert not glob.glob(str(tmp_path / ".tmp-*"))


@pytest.fixture(name="saved_state")
def saved_state_fixture(synthetic_mindrecord, tmp_path):
    """A training checkpoint at step 3 of a 6-step TINY run, written without training."""
    cfg = get_config(TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=6",
                             "--save_checkpoint_path=%s" % (tmp_path / "writer")])
    trainer = Trainer(cfg, 0, 1)
    path = str(tmp_path / checkpoint_name(1, 3))
    save_checkpoint_atomic(trainer.train_step, path, append_dict=trainer.run_meta(3))
    trainer.close()
    return path


@pytest.mark.parametrize("extra, message", [
    (["--train_config.batch_size=4"], "batch_size: checkpoint 2, now 4"),
    (["--train_steps=8"], "total_steps: checkpoint 6, now 8"),
    (["--seed=1"], "seed: checkpoint 317, now 1"),
    (["--net_config.head_conv=32"], "written by another configuration"),
])
def test_resume_from_another_configuration_is_refused_before_training(saved_state, synthetic_mindrecord, tmp_path,
                                                                      caplog, extra, message):
    out = tmp_path / "out"
    argv = TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=6", "--resume=true",
                   "--load_checkpoint_path=%s" % saved_state, "--save_checkpoint_path=%s" % out] + extra
    assert train.main(argv) == 2
    assert message in caplog.text and "training steps" not in caplog.text
    assert not out.exists() or not list(out.rglob("*.ckpt"))


def test_resume_state_loads_into_a_fresh_trainer(saved_state, synthetic_mindrecord, tmp_path):
    cfg = get_config(TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=6",
                             "--save_checkpoint_path=%s" % (tmp_path / "fresh")])
    trainer = Trainer(cfg, 0, 1)
    assert load_train_state(trainer.train_step, saved_state, trainer.run_meta())["data_step"] == 3


def test_resume_without_a_checkpoint_is_an_error(synthetic_mindrecord, tmp_path, caplog):
    argv = TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--resume=true",
                   "--save_checkpoint_path=%s" % (tmp_path / "empty")]
    assert train.main(argv) == 2
    assert "no checkpoint in" in caplog.text


def test_resume_from_a_training_state_converted_to_fp16_names_the_file(saved_state, synthetic_mindrecord, tmp_path,
                                                                        caplog):
    """Bad input: --resume=true from a training state whose float values were cast to fp16 | exit 2 before training, one line naming the file, the first values of another type, and the way out (the unconverted checkpoint, or --resume=false --load_checkpoint_path for its weights)."""
    converted = str(tmp_path / checkpoint_name(1, 3))
    values = [{"name": name, "data": ms.Tensor(value.asnumpy().astype(np.float16)
                                               if value.dtype == ms.float32 else value.asnumpy())}
              for name, value in read_checkpoint(saved_state).items()]
    ms.save_checkpoint(values, converted)
    out = tmp_path / "out"
    argv = TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=6", "--resume=true",
                   "--load_checkpoint_path=%s" % converted, "--save_checkpoint_path=%s" % out]
    assert train.main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "Traceback" not in caplog.text, caplog.text
    assert errors[0].startswith("cannot resume from %s: " % converted)
    for part in ("checkpoint Float16, now Float32", "--resume=false --load_checkpoint_path=%s" % converted):
        assert part in errors[0], errors[0]
    assert "training steps" not in caplog.text and (not out.exists() or not list(out.rglob("*.ckpt")))
