"""A two-host msrun job on one machine: scripts/run_distributed_train_cpu.sh started on two hosts,
WORKER_NUM=2, LOCAL_WORKER_NUM=1, NODE_RANK 0 and 1, MASTER_ADDR host 0's address, separate output folders.

The hosts are two network namespaces joined by a veth pair (conftest's ``two_hosts``, tools/netns.py),
each with its own address and host name: msrun's own check (MASTER_ADDR among the addresses of
``ip -j addr``) starts the scheduler on host 0 only, and the ranks communicate over the veth pair.
No test double. Making the namespaces needs root and iproute2: without them the tests are skipped,
and fail under CI=true.

The launchers run with a PATH that lacks the project's environment: they must find .venv
themselves and give msrun its 'python'.
"""
import os
import signal

import mindspore as ms
import numpy as np

from testkit.ops_support import (LEARN_FAST, TINY, check_disjoint_shares, csv_rows, finish_all, mindrecord_image_ids,
                         rank_pid, read_csv, read_text, start_two_hosts, wait_for)


def _rank_dir(tmp_path, rank):
    return tmp_path / ("host%d" % rank) / ("LOG%d" % rank)


def test_two_hosts_train_as_one_job(two_hosts, synthetic_mindrecord, tmp_path):
    hosts = two_hosts
    data = synthetic_mindrecord.mindrecord_dir
    procs = start_two_hosts(hosts, tmp_path, data,
                            TINY + LEARN_FAST + ["--epoch_size=1", "--record_data_order=true"])
    results = finish_all(procs, 600)
    for node, (status, output, _) in enumerate(results):
        assert status == 0, "host %d:\n%s\n%s" % (node, output[-3000:],
                                                  read_text(_rank_dir(tmp_path, node) / "training_log.txt")[-3000:])
        assert "host %d of 2 (%s), ranks %d-%d of 2, scheduler %s:8118" % (
            node, hosts.names[node], node, node, hosts.addresses[0]) in output, output[-3000:]
    # msrun found MASTER_ADDR among host 0's addresses only: one scheduler, on host 0.
    assert [(tmp_path / ("host%d" % n) / "msrun_log" / "scheduler.log").exists() for n in (0, 1)] == [True, False]

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


def test_a_dead_worker_on_one_host_fails_both_hosts(two_hosts, synthetic_mindrecord, tmp_path):
    """Fault: a worker killed on one host of a two-host job | both launchers fail within a bounded time; the summary names the rank that died."""
    hosts = two_hosts
    procs = start_two_hosts(hosts, tmp_path, synthetic_mindrecord.mindrecord_dir,
                            TINY + ["--train_steps=2000", "--save_checkpoint_steps=10000"])
    log1 = _rank_dir(tmp_path, 1) / "training_log.txt"
    csv1 = _rank_dir(tmp_path, 1) / "ckpt_1" / "training_log_rank1.csv"
    try:
        assert wait_for(lambda: csv_rows(csv1) >= 1, 400, proc=procs[1]), read_text(log1)[-3000:]
        pid = rank_pid(log1, 1)
        os.kill(pid, signal.SIGKILL)  # host 1's worker dies in the middle of training
    except BaseException:
        finish_all(procs, 1)
        raise
    results = finish_all(procs, 300)
    for node, (status, output, elapsed) in enumerate(results):
        assert status != 0, output[-3000:]
        assert elapsed < 180, "host %d took %.0f s to fail after rank 1 died" % (node, elapsed)
        assert "error: the distributed job failed on host %s (NODE_RANK=%d" % (hosts.names[node], node) in output
        print("host %d failed %.1f s after rank 1 was killed" % (node, elapsed))
    # Host 1 saw its worker die; host 0 learns it from the scheduler, which names rank 1's host and address.
    assert "worker rank 1, pid %d exited first, with code -9 (killed by signal 9), on host %s" % (
        pid, hosts.names[1]) in results[1][1], results[1][1][-3000:]
    assert "rank 1 on host %s (%s) stopped responding first" % (hosts.names[1], hosts.addresses[1]) \
        in results[0][1], results[0][1][-3000:]
    assert "rank 0 (pid" in results[0][1] and "stopped because the cluster broke" in results[0][1]
