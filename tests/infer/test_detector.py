"""Test-time inference (src/infer/detector.py): checkpoint classes, shape-grouped order, one dynamic-shape graph
for every input size with the detections of per-shape static graphs, and the choice of graphs."""
import logging

import numpy as np
import pytest

from agreement import assert_detections_agree, score_maps
from eval_helpers import small_checkpoint
from src.centernet_det import CenterNetDet
from src.infer.detect import EvalSettings, shape_order
from src.infer.detector import (Detector, build_detector, build_eval_network, checkpoint_classes, expected_shapes,
                                load_eval_weights)
from src.utils import CheckpointError


def test_a_checkpoint_for_other_classes_is_named_with_both_counts(tmp_path, small_config):
    path = small_checkpoint(tmp_path / "three.ckpt", num_classes=3)
    assert checkpoint_classes(path) == 3
    cfg = small_config()
    load_eval_weights(CenterNetDet(cfg.net_config, 3), path, 3)
    with pytest.raises(CheckpointError, match=r"trained for 3 classes.*num_classes=5"):
        load_eval_weights(CenterNetDet(cfg.net_config, 5), path, 5)


def test_keep_res_visits_images_grouped_by_input_shape(make_config):
    settings = EvalSettings(make_config({"eval_config.keep_res": True}))
    entries = [{"id": 1, "width": 640, "height": 480}, {"id": 2, "width": 100, "height": 90},
               {"id": 3, "width": 650, "height": 500}, {"id": 4}, {"id": 5, "width": 640, "height": 481}]
    order = shape_order(entries, settings)
    # 640x480, 650x500 and 640x481 all pad to a 672x512 input (the official (x | 31) + 1);
    # unknown sizes go last.
    assert order == [0, 2, 4, 1, 3]


# ----------------------------------------------------------------------------- one dynamic-shape graph

# Input shapes (h, w) of one run: keep_res sizes, a tall one, and 32x32 whose 8x8 map holds fewer
# pixels than K (the decode then returns all 64).
SHAPES = ((64, 96), (128, 64), (96, 96), (64, 160), (32, 32))


@pytest.fixture(name="deformed_ckpt", scope="module")
def deformed_ckpt_fixture(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "deformed.ckpt", randomise=True)


def test_one_dynamic_shape_graph_equals_the_per_shape_static_graphs(deformed_ckpt, small_config):
    """(flip_test and multi-scale through eval.py: tests/test_eval.py)"""
    cfg = small_config()
    static = Detector(build_eval_network(cfg, 5, deformed_ckpt), dynamic=False, max_graphs=len(SHAPES))
    dynamic = Detector(build_eval_network(cfg, 5, deformed_ckpt), dynamic=True)
    rng = np.random.default_rng(3)
    for repeat in range(2):  # shapes come back after others ran: nothing of an earlier shape lingers
        for height, width in SHAPES:
            image = rng.normal(size=(1, 3, height, width)).astype(np.float32)
            want, got = static(image), dynamic(image)
            assert got.shape == (min(100, height * width // 16), 6)
            assert (got[:, 4] > 0).sum() >= 10  # real peaks, not only the zero rows
            assert_detections_agree(got, want, lambda: score_maps(static.eval_net, image))
    assert dynamic.graphs_compiled == 1 and len(dynamic.eval_net.compile_cache) == 1
    assert static.graphs_compiled == len(SHAPES)
    assert len(dynamic.shapes) == len(SHAPES) and dynamic.calls == 2 * len(SHAPES)
    assert dynamic.compile_s > 0 and dynamic.forward_s > 0


def _entries(*sizes):
    return [{"id": i, "width": w, "height": h} for i, (w, h) in enumerate(sizes)]


def test_expected_shapes_cover_every_scale_and_unknown_sizes(make_config):
    keep = EvalSettings(make_config({"eval_config.keep_res": True, "eval_config.multi_scales": [0.5, 1.0]}))
    shapes = expected_shapes(_entries((640, 480), (650, 500), (300, 200)), keep)
    assert shapes == {(1, 3, 256, 352): 2, (1, 3, 512, 672): 2, (1, 3, 128, 160): 1, (1, 3, 224, 320): 1}
    assert expected_shapes(_entries((640, 480)) + [{"id": 9}], keep) is None
    fixed = EvalSettings(make_config({"eval_config.keep_res": False, "eval_config.multi_scales": [0.5, 1.0],
                                      "dataset_config.input_res_test": [512, 512]}))
    assert expected_shapes([{"id": 9}] + _entries((640, 480)), fixed) == {(1, 3, 512, 512): 4}


@pytest.mark.parametrize("policy, impl, sizes, dynamic, compiled, says", [
    ("auto", "gather", ((150, 100), (60, 40)), True, 1, "compiled one dynamic-shape graph"),
    ("auto", "gather", ((150, 100), (140, 110)), False, 1, "compiled one static (1, 3, 128, 160) graph"),
    ("always", "gather", ((150, 100),), True, 1, "compiled one dynamic-shape graph"),
    ("never", "gather", ((150, 100), (60, 40)), False, 0, "one static graph compiled per shape"),
    ("auto", "kernel", ((150, 100), (60, 40)), False, 0, "net_config.dcn_impl=kernel: ops.deformable_conv2d cannot"),
])
def test_build_detector_picks_the_graphs(deformed_ckpt, small_config, caplog, policy, impl, sizes, dynamic, compiled,
                                         says):
    """auto: one dynamic graph for several shapes, a static one for a single shape; the kernel DCN falls back."""
    cfg = small_config({"eval_config.dynamic_shape": policy, "net_config.dcn_impl": impl})
    with caplog.at_level(logging.INFO, logger="src.infer.detector"):
        detector = build_detector(cfg, EvalSettings(cfg), _entries(*sizes), deformed_ckpt)
    assert detector.dynamic == dynamic and detector.graphs_compiled == compiled
    assert says in caplog.text
