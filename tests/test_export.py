"""export.py: MINDIR (fixed or dynamic input shape) reloads on CPU with the Python network's outputs; AIR and bad
checkpoints refused cleanly."""
import json
import os
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import export as export_script
from conftest import SYNTHETIC_CLASSES, make_config
from agreement import assert_detections_agree, score_maps
from eval_helpers import FIXED, argv, small_checkpoint
from src.infer.detector import build_eval_network, dynamic_input
from src.utils import CheckpointError
from tools import infer_mindir


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
    assert_detections_agree(got[0], expected[0], lambda: score_maps(python_net, image.asnumpy()))


def test_dynamic_shape_mindir_runs_two_shapes_in_python_and_in_the_runner(tmp_path, make_config):
    """export_dynamic_shape=true: the reloaded MINDIR runs inputs of two shapes with the Python network's
    detections; tools/infer_mindir.py takes each .bin's shape from preprocess.py's metadata."""
    ckpt = small_checkpoint(tmp_path / "deformed.ckpt", randomise=True)
    assert _export(tmp_path, ckpt, flip_test=True, export_dynamic_shape=True) == 0
    path = str(tmp_path / "centernet.mindir")
    assert infer_mindir.model_inputs(path)[0][1][:2] == (1, 3)
    assert infer_mindir.is_dynamic(infer_mindir.model_inputs(path)[0][1])
    reloaded = nn.GraphCell(ms.load(path))
    reloaded.set_inputs(dynamic_input())
    python_net = build_eval_network(make_config(dict(FIXED, flip_test=True)), 5, ckpt)
    rng = np.random.default_rng(1)
    images = {"7": rng.normal(size=(1, 3, 96, 160)).astype(np.float32),
              "9": rng.normal(size=(1, 3, 128, 64)).astype(np.float32)}
    for image in images.values():
        assert_detections_agree(reloaded(Tensor(image)).asnumpy()[0], python_net(Tensor(image)).asnumpy()[0],
                                lambda: score_maps(python_net, image))

    pre = tmp_path / "preprocess_Result"
    (pre / "images").mkdir(parents=True)
    (pre / "meta").mkdir()
    for stem, image in images.items():
        image.tofile(pre / "images" / (stem + ".bin"))
        (pre / "meta" / (stem + ".json")).write_text(json.dumps({"inp_height": image.shape[2],
                                                                 "inp_width": image.shape[3]}))
    out = tmp_path / "result_Files"
    args = ["--mindir_path", path, "--input_path", str(pre / "images"), "--output_path", str(out)]
    assert infer_mindir.main(args) == 0
    for stem, image in images.items():
        got = np.fromfile(out / (stem + "_0.bin"), np.float32).reshape(-1, 6)
        assert_detections_agree(got, python_net(Tensor(image)).asnumpy()[0], lambda: score_maps(python_net, image))


def test_dynamic_shape_needs_its_metadata_and_the_gather_dcn(ckpt, tmp_path, capsys):
    """Bad input: a dynamic-shape MINDIR run on .bin files without preprocess metadata; export_dynamic_shape with the kernel DCN (MINDIR) or AIR | exit 2 with one line naming the missing file or the key; nothing written."""
    assert _export(tmp_path, ckpt, export_dynamic_shape=True, export_name=str(tmp_path / "dyn")) == 0
    (tmp_path / "images").mkdir()
    np.zeros((1, 3, 64, 64), np.float32).tofile(tmp_path / "images" / "3.bin")
    args = ["--mindir_path", str(tmp_path / "dyn.mindir"), "--input_path", str(tmp_path / "images"),
            "--output_path", str(tmp_path / "out")]
    assert infer_mindir.main(args) == 2
    err = capsys.readouterr().err
    assert "takes any input height/width" in err and os.path.join("meta", "3.json") in err
    assert not (tmp_path / "out").exists()

    assert _export(tmp_path, ckpt, export_dynamic_shape=True, export_name=str(tmp_path / "k"),
                   **{"net_config.dcn_impl": "kernel"}) == 2
    assert "needs net_config.dcn_impl=gather" in capsys.readouterr().err
    assert _export(tmp_path, ckpt, export_dynamic_shape=True, export_format="AIR", device_target="Ascend",
                   export_name=str(tmp_path / "a")) == 2
    assert "needs --export_format=MINDIR or ONNX" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["dyn.mindir", "images"]


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


def test_a_disk_without_room_for_the_model(ckpt, small_disk, capsys):
    """Fault: export.py onto a disk without room for the model, or a disk that fills while ms.export writes (a real 1 MB tmpfs) | before the export: 'not enough space in <folder> (--export_name) to start: it needs about 31.1 MB, 1.0 MB are free', exit 2; while writing: 'no space left on the device to save model <file>: it needs about 8.0 MB, ... are free'; nothing written."""
    from export import export_network
    from src.model_utils.file_io import DiskFullError
    disk = small_disk("1m")
    assert _export(disk, ckpt) == 2
    assert re.search(r"ERROR centernet: not enough space in %s \(--export_name\) to start: it needs about 3\d\.\d MB, "
                     r"1\.0 MB are free; free some space or choose another --export_name$" % re.escape(str(disk)),
                     capsys.readouterr().err.strip())
    net = nn.SequentialCell(nn.Dense(1024, 1024), nn.Dense(1024, 1024))  # 8 MB of parameters
    with pytest.raises(DiskFullError, match=r"^no space left on the device to save model %s: it needs about 8\.0 MB, "
                                            r"[\d.]+ [KM]B are free in " % re.escape(str(disk / "m.mindir"))):
        export_network(net, str(disk / "m.mindir"), Tensor(np.zeros((1, 1024), np.float32)), "MINDIR")
    assert os.listdir(disk) == []


def test_an_export_name_under_a_file_is_refused_before_the_network_is_built(ckpt, tmp_path, capsys):
    """Bad input: --export_name inside a path whose parent is a file | 'cannot write to <folder> (--export_name): <file> is a file, not a folder; choose another --export_name', exit 2, before the network is built."""
    (tmp_path / "file").write_text("x")
    assert _export(tmp_path, ckpt, export_name=str(tmp_path / "file" / "centernet")) == 2
    err = capsys.readouterr().err
    assert "ERROR centernet: cannot write to %s (--export_name): %s is a file, not a folder; choose another " \
           "--export_name" % (tmp_path / "file", tmp_path / "file") in err
    assert "loaded" not in err and os.listdir(tmp_path) == ["file"]
