"""Helpers of the launcher, distributed, resume and ModelArts tests: a tiny network and subprocess runs."""
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
VENV_BIN = os.path.dirname(PYTHON)

# ResNet with one BasicBlock per stage at 128x128: compiles in seconds, a step takes well under one.
TINY = ["--device_target=CPU", "--net_config.block_type=BasicBlock", "--net_config.block_class=[1,1,1,1]",
        "--dataset_config.input_res_train=[128,128]", "--dataset_config.num_classes=5",
        "--train_config.batch_size=2", "--num_parallel_workers=1"]
# No augmentation and a higher, constant learning rate: the loss visibly falls within a dozen steps.
LEARN_FAST = ["--dataset_config.rand_crop=false", "--dataset_config.shift=0", "--dataset_config.scale=0",
              "--dataset_config.flip_prop=0", "--dataset_config.color_aug=false",
              "--train_config.MultiDecay.warmup_steps=0", "--train_config.MultiDecay.learning_rate=0.002"]


def env(extra=None, path_first=VENV_BIN):
    """The environment of a subprocess: the venv's bin first on PATH (msrun starts 'python' from PATH)."""
    out = dict(os.environ)
    out["PATH"] = path_first + os.pathsep + out.get("PATH", "")
    out.pop("PYTHONPATH", None)
    out.update(extra or {})
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout, cwd=ROOT, extra_env=None, path_first=VENV_BIN):
    """subprocess.run with text output, a timeout and the test environment."""
    return subprocess.run(cmd, cwd=cwd, env=env(extra_env, path_first), capture_output=True, text=True,
                          timeout=timeout)


def start_train(args, log_path, extra_env=None):
    """train.py in the background (own process group), output in ``log_path``."""
    log = open(log_path, "w", encoding="utf-8")
    proc = subprocess.Popen([PYTHON, os.path.join(ROOT, "train.py")] + list(args), cwd=ROOT, env=env(extra_env),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_file = log
    return proc


def finish(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.log_file.close()


def wait_for(predicate, timeout, interval=0.2, proc=None):
    """Poll ``predicate`` until true; False on timeout or when ``proc`` ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(interval)
    return False


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def csv_rows(path):
    """Number of data rows of a CSV being written (0 when absent)."""
    try:
        with open(path, encoding="utf-8") as f:
            return max(0, sum(1 for _ in f) - 1)
    except FileNotFoundError:
        return 0


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def mindrecord_image_ids(mindrecord_dir):
    """Every image id of a MindRecord training set, in file order."""
    import mindspore.dataset as ds
    from src.dataset import mindrecord_files
    reader = ds.MindDataset(mindrecord_files(mindrecord_dir), columns_list=["image_id"], shuffle=False)
    return [int(r[0]) for r in reader.create_tuple_iterator(output_numpy=True, num_epochs=1)]


def rank_pid(log_path, rank):
    """The pid that train.py logged for ``rank`` ("rank R of N, pid P,"), or None before that line."""
    match = re.search(r"rank %d of \d+, pid (\d+)," % rank, read_text(log_path))
    return int(match.group(1)) if match else None


def check_disjoint_shares(orders, all_ids, rows_per_epoch, epochs):
    """Each epoch, the ranks' data-order records (--record_data_order, one CSV row list per rank)
    hold disjoint sets of ``rows_per_epoch`` image ids whose union is the whole dataset."""
    for epoch in range(epochs):
        shares = [{int(row["image_id"]) for row in rows[rows_per_epoch * epoch:rows_per_epoch * (epoch + 1)]}
                  for rows in orders]
        assert all(len(share) == rows_per_epoch for share in shares), [len(s) for s in shares]
        assert sum(len(share) for share in shares) == len(set().union(*shares)), "ranks read the same images"
        assert sorted(set().union(*shares)) == sorted(all_ids)
