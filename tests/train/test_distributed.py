"""Real data-parallel training on the CPU: 2 msrun workers through scripts/run_distributed_train_cpu.sh.

Evidence that the ranks read disjoint halves: --record_data_order=true makes each rank write
the image ids of every step it ran (data_order_rank<r>.csv); they come from the SamplePlan that
create_train_dataset follows (tests/test_dataset.py proves the pipeline yields exactly the
plan's rows), and here they are checked disjoint between the ranks and covering the dataset
in every epoch.
"""
import os
import signal
import subprocess
import time

import mindspore as ms
import numpy as np

from testkit.ops_support import (LEARN_FAST, ROOT, TINY, check_disjoint_shares, csv_rows, env, free_port,
                         mindrecord_image_ids, rank_pid, read_csv, read_text, wait_for)

SCRIPT = os.path.join(ROOT, "scripts", "run_distributed_train_cpu.sh")


def _launch_env(tmp_path, **extra):
    values = {"OUTPUT_DIR": str(tmp_path / "out"), "MASTER_PORT": str(free_port()), "CLUSTER_TIME_OUT": "120"}
    values.update(extra)
    return values


def test_two_cpu_workers_train_in_data_parallel(synthetic_mindrecord, tmp_path):
    """Two epochs on 2 workers, interrupted by SIGTERM to rank 1 only and resumed with --resume=true."""
    data = synthetic_mindrecord.mindrecord_dir
    out = tmp_path / "out"
    args = ["bash", SCRIPT, data, "2"] + TINY + LEARN_FAST + ["--epoch_size=2", "--record_data_order=true"]
    log = [out / ("LOG%d" % r) / "training_log.txt" for r in (0, 1)]
    csvs = [out / ("LOG%d" % r) / ("ckpt_%d" % r) / ("training_log_rank%d.csv" % r) for r in (0, 1)]

    # Part 1: SIGTERM reaches rank 1 alone; both ranks agree to stop after the same step and save.
    first = subprocess.Popen(args, cwd=str(tmp_path), env=env(_launch_env(tmp_path)), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert wait_for(lambda: csv_rows(csvs[1]) >= 2, 400, proc=first), read_text(log[1])[-3000:]
        os.kill(rank_pid(log[1], 1), signal.SIGTERM)
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == 0, output[-3000:] + read_text(log[0])[-3000:]
    stopped = [int(read_csv(c)[-1]["step"]) for c in csvs]
    assert stopped[0] == stopped[1] < 12
    for rank in (0, 1):
        assert "stop requested (SIGTERM on rank 1): stopping after step %d" % stopped[0] in read_text(log[rank])

    # Part 2: resume on both ranks from the newest step they both hold, to the end of epoch 2.
    second = subprocess.run(args + ["--resume=true"], cwd=str(tmp_path), env=env(_launch_env(tmp_path)),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:] + read_text(log[0])[-3000:]
    assert (out / "exit_status").read_text().strip() == "0"

    # Both ranks finished: each wrote its final checkpoint (24 images / 2 ranks / batch 2 = 6 steps per epoch).
    final = [out / ("LOG%d" % r) / ("ckpt_%d" % r) / "checkpoint_centernet-2_6.ckpt" for r in (0, 1)]
    assert all(p.is_file() for p in final)
    logs = [read_text(p) for p in log]
    for rank, text in enumerate(logs):
        assert "[rank %d]" % rank in text and "global 12/12" in text  # every rank logs its steps
        assert "at step %d of 12" % stopped[0] in text  # resumed where part 1 stopped
    assert "training finished" in logs[0] and "training finished" not in logs[1]  # the summary is rank 0's

    # Identical weights, optimizer state, step and BatchNorm statistics on both ranks.
    a, b = (ms.load_checkpoint(str(p)) for p in final)
    assert set(a) == set(b)
    differing = [k for k in a if not np.array_equal(a[k].asnumpy(), b[k].asnumpy())]
    assert not differing, differing[:8]
    assert int(a["global_step"].asnumpy().reshape(-1)[0]) == 12 and int(a["group_size"].asnumpy()) == 2

    # Each rank saw a different half of the data in every epoch (across the interruption).
    orders = [read_csv(out / ("LOG%d" % r) / ("ckpt_%d" % r) / ("data_order_rank%d.csv" % r)) for r in (0, 1)]
    for rank_rows in orders:
        assert [int(row["step"]) for row in rank_rows] == [s for s in range(1, 13) for _ in range(2)]
    check_disjoint_shares(orders, mindrecord_image_ids(data), rows_per_epoch=12, epochs=2)

    # The loss fell: mean over both ranks (= the global batch) of epoch 2 against epoch 1.
    losses = np.array([[float(row["loss"]) for row in read_csv(c)] for c in csvs])
    assert losses.shape == (2, 12)
    epoch1, epoch2 = losses[:, :6].mean(), losses[:, 6:].mean()
    assert epoch2 < 0.95 * epoch1, "loss did not fall: epoch 1 %.3f, epoch 2 %.3f" % (epoch1, epoch2)


def test_a_dead_worker_fails_the_job_quickly_with_a_clear_message(synthetic_mindrecord, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(["bash", SCRIPT, synthetic_mindrecord.mindrecord_dir, "2"] + TINY +
                            ["--train_steps=2000", "--save_checkpoint_steps=10000"], cwd=str(tmp_path),
                            env=env(_launch_env(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    log1 = out / "LOG1" / "training_log.txt"
    csv1 = out / "LOG1" / "ckpt_1" / "training_log_rank1.csv"
    try:
        assert wait_for(lambda: csv_rows(csv1) >= 1, 300, proc=proc), read_text(log1)[-3000:]
        pid = rank_pid(log1, 1)
        os.kill(pid, signal.SIGKILL)  # rank 1 dies in the middle of training
        killed_at = time.time()
        output, _ = proc.communicate(timeout=240)
        elapsed = time.time() - killed_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert elapsed < 120, "the job took %.0f s to fail after a worker died" % elapsed
    assert "error: the distributed job failed" in output
    assert "rank 1, pid %d exited first, with code -9 (killed by signal 9)" % pid in output, output[-3000:]
    assert (out / "exit_status").read_text().strip() != "0"
    print("job failed %.1f s after rank 1 was killed" % elapsed)
