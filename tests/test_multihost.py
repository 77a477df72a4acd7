"""A two-host msrun job on one machine: scripts/run_distributed_train_cpu.sh started twice,
WORKER_NUM=2, LOCAL_WORKER_NUM=1, MASTER_ADDR=127.0.0.1, NODE_RANK 0 and 1, separate output folders.

Test double: msrun starts its scheduler on a host when ``ip -j addr`` lists MASTER_ADDR among the
host's addresses. A second host does not list it, but on this machine both launchers would, and two
schedulers would compete for MASTER_PORT. The node-1 launcher therefore finds first on its PATH an
``ip`` that stands in for the second host's network interfaces (one address, 10.255.0.2, not
MASTER_ADDR). Everything else is real: both launchers, msrun, the scheduler, the workers and their
collective communication over 127.0.0.1.

The launchers run with a PATH that lacks the project's environment: they must find .venv
themselves and give msrun its 'python'.
"""
import os
import signal
import socket
import subprocess
import time

import mindspore as ms
import numpy as np

from ops_support import (LEARN_FAST, ROOT, TINY, check_disjoint_shares, csv_rows, free_port, mindrecord_image_ids,
                         rank_pid, read_csv, read_text, wait_for)

SCRIPT = os.path.join(ROOT, "scripts", "run_distributed_train_cpu.sh")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def _second_host_ip(tmp_path):
    """Folder holding the ``ip`` test double of the second host (see the module docstring)."""
    bin_dir = tmp_path / "host1_bin"
    bin_dir.mkdir()
    double = bin_dir / "ip"
    double.write_text("#!/bin/sh\n# Test double: the network interfaces of a second host.\n"
                      "echo '[{\"ifindex\":2,\"ifname\":\"eth0\",\"addr_info\":"
                      "[{\"family\":\"inet\",\"local\":\"10.255.0.2\",\"prefixlen\":24}]}]'\n")
    double.chmod(0o755)
    return str(bin_dir)


def _start_hosts(tmp_path, data, args):
    """The two launchers (NODE_RANK 0 and 1), each in its own process group; outputs host<r>/,
    the launchers' own output host<r>.out."""
    port = str(free_port())
    double_dir = _second_host_ip(tmp_path)
    procs = []
    for node in (0, 1):
        environ = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PYTHONPATH", "VIRTUAL_ENV")}
        environ.update({"PATH": (double_dir + os.pathsep if node else "") + SYSTEM_PATH,
                        "OUTPUT_DIR": str(tmp_path / ("host%d" % node)), "WORKER_NUM": "2",
                        "LOCAL_WORKER_NUM": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                        "NODE_RANK": str(node), "CLUSTER_TIME_OUT": "120"})
        output_path = tmp_path / ("host%d.out" % node)
        with open(output_path, "w", encoding="utf-8") as output:
            proc = subprocess.Popen(["bash", SCRIPT, data, "2"] + TINY + args, cwd=str(tmp_path), env=environ,
                                    stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        proc.output_path = output_path
        procs.append(proc)
    return procs


def _finish(procs, timeout):
    """(exit status, output, seconds to end) of each launcher; kills what is left after ``timeout``."""
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


def _rank_dir(tmp_path, rank):
    return tmp_path / ("host%d" % rank) / ("LOG%d" % rank)


def test_two_hosts_train_as_one_job(synthetic_mindrecord, tmp_path):
    data = synthetic_mindrecord.mindrecord_dir
    procs = _start_hosts(tmp_path, data, LEARN_FAST + ["--epoch_size=1", "--record_data_order=true"])
    results = _finish(procs, 600)
    for node, (status, output, _) in enumerate(results):
        assert status == 0, "host %d:\n%s\n%s" % (node, output[-3000:],
                                                  read_text(_rank_dir(tmp_path, node) / "training_log.txt")[-3000:])
        assert "host %d of 2" % node in output and "ranks %d-%d of 2" % (node, node) in output

    # Per global rank: host 0 holds only LOG0/ckpt_0, host 1 only LOG1/ckpt_1.
    assert not (tmp_path / "host0" / "LOG1").exists() and not (tmp_path / "host1" / "LOG0").exists()
    # 24 images / 2 ranks / batch 2 = 6 steps; identical weights and optimizer state on both hosts.
    final = [_rank_dir(tmp_path, r) / ("ckpt_%d" % r) / "checkpoint_centernet-1_6.ckpt" for r in (0, 1)]
    a, b = (ms.load_checkpoint(str(p)) for p in final)
    assert set(a) == set(b)
    differing = [k for k in a if not np.array_equal(a[k].asnumpy(), b[k].asnumpy())]
    assert not differing, differing[:8]
    assert int(a["group_size"].asnumpy()) == 2

    # The hosts' ranks read disjoint halves of the data.
    orders = [read_csv(_rank_dir(tmp_path, r) / ("ckpt_%d" % r) / ("data_order_rank%d.csv" % r)) for r in (0, 1)]
    check_disjoint_shares(orders, mindrecord_image_ids(data), rows_per_epoch=12, epochs=1)

    speed = [np.median([float(row["images_per_sec"]) for row in read_csv(
        _rank_dir(tmp_path, r) / ("ckpt_%d" % r) / ("training_log_rank%d.csv" % r))][1:]) for r in (0, 1)]
    print("two-host job: median images/s per rank %.2f, %.2f" % tuple(speed))


def test_a_dead_worker_on_one_host_fails_both_hosts(synthetic_mindrecord, tmp_path):
    procs = _start_hosts(tmp_path, synthetic_mindrecord.mindrecord_dir,
                         ["--train_steps=2000", "--save_checkpoint_steps=10000"])
    log1 = _rank_dir(tmp_path, 1) / "training_log.txt"
    csv1 = _rank_dir(tmp_path, 1) / "ckpt_1" / "training_log_rank1.csv"
    try:
        assert wait_for(lambda: csv_rows(csv1) >= 1, 400, proc=procs[1]), read_text(log1)[-3000:]
        pid = rank_pid(log1, 1)
        os.kill(pid, signal.SIGKILL)  # host 1's worker dies in the middle of training
    except BaseException:
        _finish(procs, 1)
        raise
    results = _finish(procs, 300)
    host = socket.gethostname()
    for node, (status, output, elapsed) in enumerate(results):
        assert status != 0, output[-3000:]
        assert elapsed < 180, "host %d took %.0f s to fail after rank 1 died" % (node, elapsed)
        assert "error: the distributed job failed on host %s (NODE_RANK=%d" % (host, node) in output
        print("host %d failed %.1f s after rank 1 was killed" % (node, elapsed))
    # Host 1 saw its worker die; host 0 learns it from the scheduler, which names rank 1's host.
    assert "worker rank 1, pid %d exited first, with code -9 (killed by signal 9), on host %s" % (pid, host) \
        in results[1][1], results[1][1][-3000:]
    assert "rank 1 on host %s (127.0.0.1) stopped responding first" % host in results[0][1], results[0][1][-3000:]
    assert "rank 0 (pid" in results[0][1] and "stopped because the cluster broke" in results[0][1]
