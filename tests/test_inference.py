"""Test-time inference (src/inference.py): checkpoint classes, shape-grouped order."""
import pytest

from eval_helpers import small_checkpoint
from src.centernet_det import CenterNetDet
from src.inference import EvalSettings, checkpoint_classes, load_eval_weights, shape_order
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
