"""Helpers of the launcher, distributed, resume and ModelArts tests: a tiny network and subprocess runs."""
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time

from testkit.small_network import SMALL_TRAIN, override_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
VENV_BIN = os.path.dirname(PYTHON)

# The small network's training run (conftest.SMALL_TRAIN) as command-line arguments.
TINY = override_args(SMALL_TRAIN)
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


# The system's search path without the project's environment (with sbin: msrun runs 'ip -j addr').
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DISTRIBUTED_CPU_SCRIPT = os.path.join(ROOT, "scripts", "run_distributed_train_cpu.sh")


def start_two_hosts(hosts, folder, mindrecord_dir, train_args, cluster_time_out=120):
    """The two launchers of a 2-host CPU job, one on each host of ``hosts`` (tools.netns.TwoHosts):
    WORKER_NUM=2, LOCAL_WORKER_NUM=1, NODE_RANK 0 and 1, MASTER_ADDR host 0's address, the default
    MASTER_PORT, each in its own process group and with a PATH that lacks the project's environment.
    Outputs in <folder>/host<r>/, the launchers' own output in <folder>/host<r>.out."""
    procs = []
    for node in (0, 1):
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHON", "PYTHONPATH", "VIRTUAL_ENV", "MASTER_PORT")}
        environ.update({"PATH": SYSTEM_PATH, "OUTPUT_DIR": os.path.join(str(folder), "host%d" % node),
                        "LOCAL_WORKER_NUM": "1", "MASTER_ADDR": hosts.addresses[0], "NODE_RANK": str(node),
                        "CLUSTER_TIME_OUT": str(cluster_time_out)})
        output_path = os.path.join(str(folder), "host%d.out" % node)
        command = hosts.command(node, ["bash", DISTRIBUTED_CPU_SCRIPT, mindrecord_dir, "2"] + list(train_args))
        with open(output_path, "w", encoding="utf-8") as output:
            proc = subprocess.Popen(command, cwd=str(folder), env=environ, stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        proc.output_path = output_path
        procs.append(proc)
    return procs


def finish_all(procs, timeout):
    """(exit status, output, seconds until it ended) of each process started by start_two_hosts;
    what still runs after ``timeout`` is killed (its time is inf)."""
    start = time.time()
    ended = {}
    try:
        while len(ended) < len(procs) and time.time() - start < timeout:
            for i, proc in enumerate(procs):
                if i not in ended and proc.poll() is not None:
                    ended[i] = time.time() - start
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return [(proc.wait(), read_text(proc.output_path), ended.get(i, float("inf"))) for i, proc in enumerate(procs)]
