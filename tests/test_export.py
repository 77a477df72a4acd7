"""export.py: MINDIR reloads on CPU with the Python network's outputs; AIR and bad checkpoints refused cleanly."""
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import export as export_script
from conftest import SYNTHETIC_CLASSES, make_config
from eval_helpers import FIXED, argv, small_checkpoint
from src.inference import build_eval_network
from src.utils import CheckpointError


@pytest.fixture(name="ckpt", scope="module")
def ckpt_fixture(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.ckpt")


def _export(tmp_path, ckpt, **extra):
    options = dict(FIXED, device_target="CPU", export_load_ckpt=ckpt, export_name=str(tmp_path / "centernet"))
    options.update(extra)
    return export_script.main(argv(options))


def test_mindir_reload_gives_the_python_network_outputs(ckpt, tmp_path, make_config):
    assert _export(tmp_path, ckpt, flip_test=True) == 0
    assert os.listdir(tmp_path) == ["centernet.mindir"]
    reloaded = nn.GraphCell(ms.load(str(tmp_path / "centernet.mindir")))
    cfg = make_config(dict(FIXED, flip_test=True))
    python_net = build_eval_network(cfg, 5, ckpt)
    image = Tensor(np.random.default_rng(0).normal(size=(1, 3, 128, 128)).astype(np.float32))
    expected, got = python_net(image).asnumpy(), reloaded(image).asnumpy()
    assert got.shape == (1, 100, 6)
    np.testing.assert_array_equal(got[..., 5], expected[..., 5])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_a_name_mindspore_refuses_is_exported_through_a_staging_folder(ckpt, tmp_path):
    folder = tmp_path / "my models"  # ms.export refuses names with a space
    folder.mkdir()
    assert _export(folder, ckpt, export_name=str(folder / "centernet v1")) == 0
    assert os.listdir(folder) == ["centernet v1.mindir"]
    out = nn.GraphCell(ms.load(str(folder / "centernet v1.mindir")))(Tensor(np.zeros((1, 3, 128, 128), np.float32)))
    assert out.shape == (1, 100, 6)


def test_air_needs_ascend_and_nothing_is_written(ckpt, tmp_path, capsys):
    assert _export(tmp_path, ckpt, export_format="AIR") != 0
    assert "AIR needs the Ascend backend" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_bad_checkpoint_or_resolution_is_refused(tmp_path, capsys):
    """Bad input: export with a checkpoint for another class count, an input size not a multiple of 32, a missing checkpoint | exit 2 with one line naming the checkpoint or key; nothing written."""
    other = small_checkpoint(tmp_path / "c80.ckpt", num_classes=80)
    assert _export(tmp_path, other) != 0
    err = capsys.readouterr().err
    assert "trained for 80 classes" in err and "hm." in err
    assert _export(tmp_path, other, **{"export_config.input_res": [100, 128]}) != 0
    assert "multiples of 32" in capsys.readouterr().err
    assert _export(tmp_path, str(tmp_path / "none.ckpt")) != 0
    assert "checkpoint not found" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["c80.ckpt"]


def test_checkpoint_of_a_shallower_network_is_refused(ckpt, tmp_path, capsys):
    deeper = {"net_config.block_class": [2, 2, 2, 2]}
    assert _export(tmp_path, ckpt, **deeper) == 2
    assert "network parameters uninitialised (backbone.layer1.1" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="uninitialised"):
        build_eval_network(make_config(dict(FIXED, **deeper)), SYNTHETIC_CLASSES, ckpt)
    assert os.listdir(tmp_path) == []
