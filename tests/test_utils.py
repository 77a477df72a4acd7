"""Checkpoint I/O: atomic save, listing, loading with named mismatches, resume state checks."""
import errno
import logging
import os
import re
import subprocess

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from src.centernet_det import CenterNetDet, CenterNetLossCell, CenterNetTrainStep
from conftest import SMALL as SMALL_NET, override_args
from src.model_utils.config import get_config
from src.model_utils.file_io import remove_stale_temporaries
from src.utils import (CheckpointError, build_optimizer, checkpoint_name, list_checkpoints, load_network_weights,
                       load_train_state, prune_checkpoints, save_checkpoint_atomic, split_decay_params)

SMALL = override_args(SMALL_NET)


def _net(classes=3, *extra):
    return CenterNetDet(get_config(SMALL + list(extra)).net_config, classes)


def test_atomic_save_listing_and_pruning(tmp_path):
    """Fault: a run killed while saving a checkpoint | the partial .tmp- file never counts as a checkpoint and is removed at the next start."""
    net = nn.Dense(2, 2)
    for epoch, step in ((1, 5), (2, 3), (1, 10), (10, 1)):
        save_checkpoint_atomic(net, str(tmp_path / checkpoint_name(epoch, step)))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process that has ended: its pid names the killed save's temporaries
    (tmp_path / (".tmp-%d-checkpoint_centernet-11_1.ckpt" % gone.pid)).write_bytes(b"half")  # a killed save
    (tmp_path / (".tmp-%d-checkpoint_centernet-11_1.ckpt.tmp" % gone.pid)).write_bytes(b"half")  # MindSpore's own
    live = tmp_path / (".tmp-%d-checkpoint_centernet-12_1.ckpt" % os.getpid())
    live.write_bytes(b"being written")  # a save in progress (this process) is not stale
    names = [os.path.basename(p) for p in list_checkpoints(str(tmp_path))]
    assert names == ["checkpoint_centernet-1_5.ckpt", "checkpoint_centernet-1_10.ckpt",
                     "checkpoint_centernet-2_3.ckpt", "checkpoint_centernet-10_1.ckpt"]
    prune_checkpoints(str(tmp_path), 2)
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path))] == names[2:]
    assert len(remove_stale_temporaries(str(tmp_path))) == 2
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == [live.name]


def test_decay_rule_excludes_bias_and_bn():
    net = _net()
    decay, no_decay = split_decay_params(net.trainable_params(), "exclude_bias_and_bn")
    assert all(not p.name.endswith((".bias", ".beta", ".gamma")) for p in decay)
    assert {"deconv_layers.0.bias", "backbone.bn1.gamma", "hm.2.bias"} <= {p.name for p in no_decay}
    assert len(decay) + len(no_decay) == len(net.trainable_params())


def test_full_and_backbone_checkpoints_load(tmp_path, caplog):
    src = _net()
    path = str(tmp_path / "full.ckpt")
    ms.save_checkpoint(src, path)
    dst = _net()
    assert load_network_weights(dst, path) == len(list(src.get_parameters()))
    np.testing.assert_array_equal(dst.hm[2].weight.asnumpy(), src.hm[2].weight.asnumpy())

    backbone = [{"name": p.name, "data": p.value()} for p in src.get_parameters() if p.name.startswith("backbone.")]
    ms.save_checkpoint(backbone, str(tmp_path / "backbone.ckpt"))
    with caplog.at_level(logging.INFO):
        load_network_weights(_net(), str(tmp_path / "backbone.ckpt"))
    assert "backbone only" in caplog.text


def test_head_mismatch_needs_filter_weight(tmp_path):
    """Bad input: a checkpoint with heads for another class count | an error naming the head parameters and --filter_weight=true."""
    path = str(tmp_path / "other_classes.ckpt")
    ms.save_checkpoint(_net(5), path)
    with pytest.raises(CheckpointError, match="hm.2.weight.*filter_weight"):
        load_network_weights(_net(3), path)
    dst = _net(3)
    fresh = dst.hm[2].weight.asnumpy().copy()
    load_network_weights(dst, path, filter_weight=True)
    np.testing.assert_array_equal(dst.hm[2].weight.asnumpy(), fresh)


def test_body_mismatch_and_garbage_are_errors(tmp_path):
    """Bad input: a checkpoint of another backbone, a corrupt file, a missing file, an unrelated network | CheckpointError naming the file and the mismatched parameters."""
    path = str(tmp_path / "r18.ckpt")
    ms.save_checkpoint(CenterNetDet(get_config(["--net_config.block_type=BasicBlock",
                                                "--net_config.block_class=[2,1,1,1]"]).net_config, 3), path)
    bottleneck = CenterNetDet(get_config(["--net_config.block_class=[1,1,1,1]"]).net_config, 3)
    with pytest.raises(CheckpointError, match="does not fit the network"):
        load_network_weights(bottleneck, path)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*garbage.ckpt"):
        load_network_weights(_net(), str(garbage))
    with pytest.raises(CheckpointError, match="not found"):
        load_network_weights(_net(), str(tmp_path / "absent.ckpt"))
    unrelated = str(tmp_path / "dense.ckpt")
    ms.save_checkpoint(nn.Dense(2, 2), unrelated)
    with pytest.raises(CheckpointError, match="holds no parameter of this network"):
        load_network_weights(_net(), unrelated)


def _train_cell(cfg, lr_len=10):
    net = CenterNetDet(cfg.net_config, 3)
    opt = build_optimizer(net, cfg.train_config, np.full(lr_len, 1e-3, np.float32), 1e-7)
    return CenterNetTrainStep(CenterNetLossCell(net, cfg.net_config), opt,
                              nn.DynamicLossScaleUpdateCell(1024.0, 2, 1000), 1024.0)


def test_resume_state_round_trip_and_mismatches(tmp_path):
    cfg = get_config(SMALL)
    cell = _train_cell(cfg)
    cell.optimizer.global_step.set_data(Tensor(np.array([7], np.int32)))
    cell.scale_sense.set_data(Tensor(np.float32(256.0)))
    meta = {"total_steps": 10, "steps_per_epoch": 5, "batch_size": 2, "group_size": 1, "seed": 1}
    path = save_checkpoint_atomic(cell, str(tmp_path / checkpoint_name(2, 2)), dict(meta, data_step=7, epoch=2))
    other = _train_cell(cfg)
    saved = load_train_state(other, path, meta)
    assert saved["data_step"] == 7
    assert int(other.optimizer.global_step.asnumpy().reshape(-1)[0]) == 7
    assert float(other.scale_sense.asnumpy()) == 256.0
    with pytest.raises(CheckpointError, match="batch_size: checkpoint 2, now 4"):
        load_train_state(_train_cell(cfg), path, dict(meta, batch_size=4))
    with pytest.raises(CheckpointError, match="another configuration"):
        load_train_state(_train_cell(get_config(SMALL + ["--net_config.head_conv=32"])), path, meta)
    plain = str(tmp_path / "weights.ckpt")
    ms.save_checkpoint(cell.network.network, plain)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_train_state(_train_cell(cfg), plain, meta)


class _FillingFile:
    """Test double of a file on a nearly full disk: accepts ``room`` bytes, then raises ENOSPC."""

    def __init__(self, path, room):
        self._file, self._room = open(path, "wb"), room

    def write(self, data):
        if len(data) > self._room:
            self._file.write(bytes(data[:self._room]))
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def test_disk_full_while_saving_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    """Fault: the disk fills up while a checkpoint is saved | OSError naming the checkpoint, the MB it needs and the MB free; no partial or temporary file left."""
    from mindspore.train import serialization
    serialization._ensure_ckpt_fs_initialized()  # MindSpore sets its writer up on first use; patch it after
    monkeypatch.setattr(serialization._ckpt_fs, "create", lambda path, *args: _FillingFile(path, 1000))
    net = nn.Dense(64, 64)
    target = tmp_path / checkpoint_name(1, 1)
    with pytest.raises(OSError, match=r"no space left on the device to save checkpoint %s: it needs about "
                                      r"1\d\.\d KB, [\d.]+ [KMG]B are free in " % re.escape(str(target))):
        save_checkpoint_atomic(net, str(target))
    assert os.listdir(tmp_path) == []


def test_checkpoint_leaving_parameters_uninitialised_is_refused_where_complete(tmp_path, caplog):
    """Bad input: a checkpoint that leaves network parameters uninitialised ([1,1,1,1] weights into a [2,2,2,2] network) | evaluation, export and detection refuse it naming the missing parameters; training from a backbone-only checkpoint lists the fresh ones."""
    path = str(tmp_path / "r1111.ckpt")
    ms.save_checkpoint(_net(), path)
    deeper = _net(3, "--net_config.block_class=[2,2,2,2]")
    with pytest.raises(CheckpointError, match=r"r1111.ckpt leaves \d+ of the \d+ network parameters uninitialised "
                                              r"\(backbone.layer1.1"):
        load_network_weights(deeper, path, complete=True)
    backbone = [{"name": p.name, "data": p.value()} for p in _net().get_parameters() if p.name.startswith("backbone.")]
    ms.save_checkpoint(backbone, str(tmp_path / "backbone.ckpt"))
    with pytest.raises(CheckpointError, match="uninitialised"):
        load_network_weights(_net(), str(tmp_path / "backbone.ckpt"), complete=True)
    with caplog.at_level(logging.INFO):
        load_network_weights(_net(), str(tmp_path / "backbone.ckpt"))
    assert "start fresh: deconv_layers." in caplog.text


def test_network_weights_of_another_type_convert_floats_and_refuse_others(tmp_path, caplog):
    """Network weights (eval, export, fine-tuning) of fp16 load converted to float32; int32 ones are a
    CheckpointError naming the file and the first parameters of the wrong type."""
    src = _net()
    half = [{"name": p.name, "data": Tensor(p.asnumpy().astype(np.float16))} for p in src.get_parameters()]
    ms.save_checkpoint(half, str(tmp_path / "half.ckpt"))
    dst = _net()
    with caplog.at_level(logging.INFO):
        load_network_weights(dst, str(tmp_path / "half.ckpt"), complete=True)
    assert "converted to the network's float type" in caplog.text
    for a, b in zip(src.get_parameters(), dst.get_parameters()):
        assert b.dtype == ms.float32
        np.testing.assert_array_equal(b.asnumpy(), a.asnumpy().astype(np.float16).astype(np.float32))
    ints = [{"name": p.name, "data": Tensor(p.asnumpy().astype(np.int32))} for p in src.get_parameters()]
    ms.save_checkpoint(ints, str(tmp_path / "ints.ckpt"))
    with pytest.raises(CheckpointError, match=r"ints.ckpt stores parameters in a type the network cannot take "
                                              r"\(backbone.conv1.weight: checkpoint Int32, network Float32"):
        load_network_weights(dst, str(tmp_path / "ints.ckpt"))
