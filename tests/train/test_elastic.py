"""Elastic resume: a checkpoint of a 2-worker job continued by 1 worker (a device lost).

A step is one optimizer update (its global batch: devices x batch_size images); the global
step, the learning-rate schedule and the optimizer state carry over, and the rest of the
interrupted epoch is re-planned by image count (src.data.train_data.SamplePlan): every image of the
epoch is read once across the two runs.
"""
import subprocess

import mindspore as ms
import numpy as np
import pytest

from testkit.ops_support import TINY, env, mindrecord_image_ids, read_csv, read_text
from src.train.lr_schedule import build_lr
from src.model_utils.config import get_config
from src.data.train_data import Cursor, SamplePlan
from test_distributed import SCRIPT, _launch_env
from test_resume import SCHEDULE


def _old_run_rows(num_rows, batch, seed, group, steps):
    """Rows the ``group`` ranks read in global steps 1..steps of a fresh plan."""
    return [SamplePlan(num_rows, batch, seed, r, group).indices(0, steps * batch) for r in range(group)]


@pytest.mark.parametrize("num_rows, batch, old, new, stopped", [
    (24, 2, 2, 1, 3), (27, 2, 2, 1, 5), (25, 2, 1, 2, 3), (40, 2, 3, 2, 2), (24, 2, 2, 1, 6), (30, 3, 2, 3, 1)])
def test_replanned_epoch_reads_each_image_once(num_rows, batch, old, new, stopped):
    seed = 5
    before = _old_run_rows(num_rows, batch, seed, old, stopped)
    # the cursor a checkpoint of the old group saves after ``stopped`` steps
    cursor = SamplePlan(num_rows, batch, seed, 0, old).cursor(stopped)
    plans = [SamplePlan(num_rows, batch, seed, r, new, resume=cursor) for r in range(new)]
    head = plans[0].head_steps
    after = [p.indices(stopped * batch, head * batch) for p in plans]
    epoch = np.concatenate(before + after)
    assert len(set(epoch.tolist())) == len(epoch)  # no image of the interrupted epoch twice
    left_out = num_rows - len(epoch)
    assert 0 <= left_out < max(old, new) * batch  # only a tail short of a global batch is left out
    # after the interrupted epoch, whole epochs of the new group, numbered on
    end = plans[0].cursor(stopped + head)
    assert end.epoch == cursor.epoch and plans[0].cursor(stopped + head + 1) == Cursor(stopped + head + 1,
                                                                                       cursor.epoch + 1, 1, new * batch)
    nxt = np.concatenate([p.indices((stopped + head) * batch, p.epoch_len) for p in plans])
    assert sorted(nxt.tolist()) == sorted(np.concatenate([
        SamplePlan(num_rows, batch, seed, r, new).epoch_indices(cursor.epoch + 1) for r in range(new)]).tolist())


def test_a_resume_with_the_same_group_follows_the_uninterrupted_plan():
    for rank in (0, 1):
        plain = SamplePlan(26, 2, 3, rank, 2)
        for step in (1, 5, 6, 7, 13):
            resumed = SamplePlan(26, 2, 3, rank, 2, resume=plain.cursor(step))
            np.testing.assert_array_equal(resumed.indices(step * 2, 30), plain.indices(step * 2, 30))
            assert [resumed.cursor(s) for s in range(step + 1, step + 15)] == \
                [plain.cursor(s) for s in range(step + 1, step + 15)]


def test_two_workers_then_one_continue_step_schedule_and_epoch(synthetic_mindrecord, tmp_path):
    data = synthetic_mindrecord.mindrecord_dir
    out = tmp_path / "out"
    args = TINY + SCHEDULE + ["--epoch_size=2", "--record_data_order=true", "--save_checkpoint_steps=100"]
    first = subprocess.run(["bash", SCRIPT, data, "2"] + args + ["--stop_at_step=3"], cwd=str(tmp_path),
                           env=env(_launch_env(tmp_path)), capture_output=True, text=True, timeout=600)
    log0 = out / "LOG0" / "training_log.txt"
    assert first.returncode == 0, first.stdout[-2000:] + read_text(log0)[-3000:]
    second = subprocess.run(["bash", SCRIPT, data, "1"] + args + ["--resume=true"], cwd=str(tmp_path),
                            env=env(_launch_env(tmp_path)), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + read_text(log0)[-3000:]
    log = read_text(log0)
    assert "elastic resume: the checkpoint was written by 2 device(s), this run has 1; global step 3" in log
    assert "checkpoint_centernet-1_3.ckpt at step 3 of 12" in log

    # global step and learning-rate schedule continue: steps 4..12 at the 2-worker schedule's rates
    ckpt0 = out / "LOG0" / "ckpt_0"
    before = read_csv(ckpt0 / "training_log_rank0.csv")
    after = read_csv(ckpt0 / "training_log.csv")
    assert [int(r["step"]) for r in before] == [1, 2, 3]
    assert [int(r["step"]) for r in after] == list(range(4, 13))
    cfg = get_config(args)
    lr = build_lr(cfg.train_config, 12, 6)  # 24 images / (2 workers x batch 2) = 6 steps per epoch
    np.testing.assert_allclose([float(r["lr"]) for r in before + after], lr[:12], rtol=1e-5)
    final = ms.load_checkpoint(str(ckpt0 / "checkpoint_centernet-2_3.ckpt"))  # 6 steps finish epoch 1
    assert int(final["global_step"].asnumpy().reshape(-1)[0]) == 12
    assert int(final["data_step"].asnumpy()) == 12 and int(final["group_size"].asnumpy()) == 1

    # epoch 1: 2 workers x 3 steps x 2 images, then 1 worker x 6 steps x 2 images, each image once
    orders = [read_csv(out / ("LOG%d" % r) / ("ckpt_%d" % r) / ("data_order_rank%d.csv" % r)) for r in (0, 1)]
    resumed = read_csv(ckpt0 / "data_order.csv")
    assert [int(r["step"]) for r in resumed] == [s for s in range(4, 13) for _ in range(2)]
    epoch1 = [int(r["image_id"]) for rows in orders for r in rows] + \
        [int(r["image_id"]) for r in resumed if int(r["step"]) <= 9]
    assert sorted(epoch1) == sorted(mindrecord_image_ids(data))
    epoch2 = [int(r["image_id"]) for r in resumed if int(r["step"]) > 9]
    assert len(set(epoch2)) == 6
