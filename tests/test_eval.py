"""eval.py and its loop: a perfect predictor scores AP > 0.95 through the real chain; end-to-end runs and bad input."""
import contextlib
import io
import json
import os
import re
import shutil
import threading
import time

import mindspore as ms
import numpy as np
import pytest

import eval as eval_script
from agreement import PredictionLog, assert_runs_agree
from eval_helpers import (FIXED, SMALL, argv, file_names, perfect_predictor,
                          pseudo_ground_truth, small_checkpoint)
from src.data.coco import CocoData
from src.infer.coco_eval import STAT_NAMES, coco_evaluate
from src.infer.detect import EvalSettings, detect_images
from src.infer.detector import build_eval_network
from src.model_utils.config import get_config


@pytest.fixture(name="pynative")
def pynative_fixture():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.mark.parametrize("keep_res, scales, flip", [
    (True, [1.0], False),
    (False, [1.0], False),
    (True, [0.75, 1.0], True),
    (False, [0.75, 1.0], True),
])
def test_perfect_predictor_scores_above_095(synthetic_coco, make_config, pynative, keep_res, scales, flip):
    """Heads built from the ground truth, decoded in the graph code, post-processed and COCO-evaluated."""
    cfg = make_config(dict(SMALL, **{"eval_config.keep_res": keep_res, "eval_config.multi_scales": scales,
                                     "dataset_config.input_res_test": [160, 160], "flip_test": flip}))
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    settings = EvalSettings(cfg)
    records, timing = detect_images(data.images, data.image_path, perfect_predictor(data, flip), settings,
                                    data.category_ids, progress=False)
    assert timing["images"] == len(data) == 8
    assert {r["category_id"] for r in records} <= set(data.category_ids)
    stats, table = coco_evaluate(data, records, [e["id"] for e in data.images])
    assert stats["AP"] > 0.95 and stats["AP50"] > 0.95, table
    if len(scales) > 1:
        assert max(len([r for r in records if r["image_id"] == e["id"]]) for e in data.images) <= 100


def test_post_processing_runs_beside_the_network(synthetic_coco, make_config):
    """The network thread hands finished images to a post-processor: 8 images of 0.1 s network and 0.1 s
    drawing take about 0.9 s, not the 1.6 s of doing both in turn; a drawing error still surfaces."""
    cfg = make_config(dict(SMALL, **{"eval_config.keep_res": True}))
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    threads = set()

    def predict(inp, meta):
        time.sleep(0.1)
        return np.zeros((100, 6), np.float32)

    def draw(entry, image, per_class):
        threads.add(threading.current_thread().name)
        time.sleep(0.1)
    _, timing = detect_images(data.images, data.image_path, predict, EvalSettings(cfg), data.category_ids,
                              on_image=draw, progress=False)
    assert threads and threading.main_thread().name not in threads
    assert timing["predict_s"] >= 0.8 and timing["post_s"] >= 0.8
    assert timing["wall_s"] < 1.4, timing

    def broken(entry, image, per_class):
        raise OSError("no space left on device: %s" % entry["file_name"])
    with pytest.raises(OSError, match="no space left on device"):
        detect_images(data.images, data.image_path, predict, EvalSettings(cfg), data.category_ids,
                      on_image=broken, progress=False)


def test_a_wrong_coordinate_chain_is_caught(synthetic_coco, make_config, pynative):
    """Control: the same predictor with a shifted centre loses the AP, so the check above can fail."""
    cfg = make_config(dict(SMALL, **{"eval_config.keep_res": False, "dataset_config.input_res_test": [160, 160]}))
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    predict = perfect_predictor(data, False)

    def shifted(inp, meta):
        return predict(inp, dict(meta, c=[meta["c"][0] + 12, meta["c"][1]]))
    records, _ = detect_images(data.images, data.image_path, shifted, EvalSettings(cfg), data.category_ids,
                               progress=False)
    stats, _ = coco_evaluate(data, records, [e["id"] for e in data.images])
    assert stats["AP"] < 0.6


# ----------------------------------------------------------------------------- eval.py end to end

def _run_eval(tmp_path, synthetic_coco, ckpt, extra=None, out="out"):
    out_dir = tmp_path / out
    options = dict(FIXED, device_target="CPU", data_dir=synthetic_coco.root, load_checkpoint_path=ckpt,
                   save_result_dir=str(out_dir))
    options.update(extra or {})
    args = argv(options)
    return eval_script.main(args), out_dir


@pytest.fixture(name="ckpt", scope="module")
def ckpt_fixture(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.ckpt")


def test_eval_writes_results_and_metrics(synthetic_coco, ckpt, tmp_path, capsys):
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt)
    assert code == 0
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in printed
    assert len([line for line in printed.splitlines() if " @[ IoU=" in line]) == 12
    results = json.loads((out / "results.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics)[:12] == list(STAT_NAMES)
    assert metrics["num_images"] == 8 and metrics["num_detections"] == len(results) > 0
    assert {r["category_id"] for r in results} <= {3, 7, 12, 20, 41}
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score"}
    assert max(sum(r["image_id"] == i for r in results) for i in {r["image_id"] for r in results}) <= 100
    assert sorted(os.listdir(out)) == [".lock", "metrics.json", "results.json"]  # .lock: FolderLock of the run

    # Against ground truth made of its own (altered) detections the network scores between 0 and 1,
    # and metrics.json holds exactly what COCOeval computes from results.json.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    pseudo = pseudo_ground_truth(synthetic_coco.val_ann, results, tmp_path / "pseudo.json")
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"eval_ann_file": pseudo,
                                                           "eval_image_dir": synthetic_coco.val_images}, out="out2")
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.05 < metrics["AP"] < 0.95 and 0 < metrics["AR100"] < 1
    assert "= %.3f" % metrics["AP"] in capsys.readouterr().out
    gt = COCO(pseudo)
    evaluator = COCOeval(gt, gt.loadRes(str(out / "results.json")), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    np.testing.assert_allclose([metrics[n] for n in STAT_NAMES], evaluator.stats, atol=1e-12)


def test_eval_keep_res_test_mode_and_drawings(synthetic_coco, ckpt, tmp_path):
    """run_mode=test on an image_info json (no annotations): results only; visual_image draws PNGs."""
    root = tmp_path / "coco"
    shutil.copytree(synthetic_coco.val_images, root / "test2017")
    doc = json.loads(open(synthetic_coco.val_ann).read())
    doc.pop("annotations")
    doc["images"] = doc["images"][:2]
    (root / "annotations").mkdir()
    (root / "annotations" / "image_info_test-dev2017.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    args = argv(dict(SMALL, **{"device_target": "CPU", "data_dir": str(root), "run_mode": "test",
                               "eval_config.keep_res": True, "visual_image": True, "load_checkpoint_path": ckpt,
                               "save_result_dir": str(out), "eval_config.score_thresh": 0.0}))
    summary = eval_script.run_eval(get_config(args))
    shapes = {((i["height"] | 31) + 1, (i["width"] | 31) + 1) for i in doc["images"]}
    assert summary["input_shapes"] == len(shapes) and summary["graphs_compiled"] == 1
    assert summary["dynamic_shape"] == (len(shapes) > 1) and summary["metrics"] is None
    assert file_names(out) == [".lock", "results.json", "visual"]
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} == {doc["images"][0]["id"], doc["images"][1]["id"]}
    stems = [os.path.splitext(i["file_name"])[0] for i in doc["images"]]
    assert file_names(out / "visual") == sorted(s + "_pred.png" for s in stems)


def test_keep_res_multi_scale_flip_in_one_graph_equals_per_shape_graphs(synthetic_coco, tmp_path, monkeypatch,
                                                                       make_config):
    """eval.py over images of several sizes at two scales with flip: one dynamic-shape graph gives the
    detections of one static graph per input shape, on the same inputs (tie rule of tests/agreement.py;
    the merged records go through soft-NMS, which a tie can reorder, so they are compared per input)."""
    ckpt = small_checkpoint(tmp_path / "deformed.ckpt", randomise=True)
    options = {"eval_config.keep_res": True, "eval_config.multi_scales": [0.75, 1.0], "flip_test": True,
               "eval_max_images": 3}
    runs, logs = {}, {}
    for policy in ("always", "never"):
        args = argv(dict(SMALL, **options, **{"device_target": "CPU", "data_dir": synthetic_coco.root,
                                              "load_checkpoint_path": ckpt, "save_result_dir": str(tmp_path / policy),
                                              "eval_config.dynamic_shape": policy}))
        logs[policy] = PredictionLog().install(monkeypatch, eval_script)
        with contextlib.redirect_stdout(io.StringIO()):
            runs[policy] = eval_script.run_eval(get_config(args))
        monkeypatch.undo()
    dynamic, static = runs["always"], runs["never"]
    assert dynamic["input_shapes"] == static["input_shapes"] >= 3
    assert dynamic["graphs_compiled"] == 1 and static["graphs_compiled"] == static["input_shapes"]
    assert len(logs["always"].calls) == 3 * 2  # every image at both scales
    reference = build_eval_network(make_config(dict(SMALL, flip_test=True)), 5, ckpt)
    assert_runs_agree(logs["always"], logs["never"], reference)


def test_empty_detections_are_reported_not_a_crash(synthetic_coco, tmp_path, capsys):
    ckpt = small_checkpoint(tmp_path / "silent.ckpt", hm_bias=-1e4)  # every score is exactly 0
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt)
    assert code == 0
    assert json.loads((out / "results.json").read_text()) == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(metrics[name] == 0 for name in STAT_NAMES) and metrics["num_detections"] == 0
    assert "no detections at all" in capsys.readouterr().err


def _assert_failed_cleanly(code, out, capsys, *fragments):
    """Non-zero exit, no result files (nor temporaries; the run's .lock stays), an ERROR log line naming every
    fragment."""
    assert code != 0
    assert not os.path.exists(out / "results.json") and not os.path.exists(out / "metrics.json")
    assert [n for n in file_names(out) if n.startswith(".") and n != ".lock"] == []
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert errors, "no error logged"
    for fragment in fragments:
        assert fragment in errors[-1]


def test_missing_annotation_file_and_image_folder(synthetic_coco, ckpt, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"data_dir": str(empty)})
    _assert_failed_cleanly(code, out, capsys, "annotation file not found", "instances_val2017.json")
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"eval_ann_file": synthetic_coco.val_ann,
                                                           "eval_image_dir": str(tmp_path / "nowhere")})
    _assert_failed_cleanly(code, out, capsys, "image folder not found", "nowhere")


def test_image_listed_but_absent(synthetic_coco, ckpt, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(synthetic_coco.val_images, images)
    victim = sorted(os.listdir(images))[3]
    os.remove(images / victim)
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"eval_ann_file": synthetic_coco.val_ann,
                                                           "eval_image_dir": str(images)})
    _assert_failed_cleanly(code, out, capsys, "missing", victim)


def test_checkpoint_for_another_class_count(synthetic_coco, tmp_path, capsys):
    ckpt = small_checkpoint(tmp_path / "c80.ckpt", num_classes=80)
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt)
    _assert_failed_cleanly(code, out, capsys, "trained for 80 classes", "hm.", "num_classes=5")


def test_class_count_differs_from_the_annotation_file(synthetic_coco, ckpt, tmp_path, capsys):
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"dataset_config.num_classes": 4})
    _assert_failed_cleanly(code, out, capsys, "num_classes is 4", "has 5 categories")


def test_an_undecodable_image_leaves_no_results(synthetic_coco, ckpt, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(synthetic_coco.val_images, images)
    victim = sorted(os.listdir(images))[5]
    (images / victim).write_bytes(b"not an image")
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"eval_ann_file": synthetic_coco.val_ann,
                                                           "eval_image_dir": str(images)})
    _assert_failed_cleanly(code, out, capsys, "cannot decode", victim)


def test_a_fifo_among_the_evaluation_images_fails_before_inference(synthetic_coco, ckpt, tmp_path, capsys):
    """Bad input: an evaluation image that is a FIFO (a stalled network file) | exit 2 before any inference: 'not regular files ... <name> (a FIFO (named pipe))'."""
    images = tmp_path / "images"
    shutil.copytree(synthetic_coco.val_images, images)
    victim = sorted(os.listdir(images))[2]
    os.remove(images / victim)
    os.mkfifo(images / victim)
    code, out = _run_eval(tmp_path, synthetic_coco, ckpt, {"eval_ann_file": synthetic_coco.val_ann,
                                                           "eval_image_dir": str(images)})
    _assert_failed_cleanly(code, out, capsys, "not regular files", "%s (a FIFO (named pipe))" % victim)


class _BlankDetector:
    """A detector without a network (no detections): eval.py's bookkeeping around the loop, in a second."""
    forward_s = compile_s = 0.0
    shapes, graphs_compiled, dynamic = {(1, 3, 64, 64)}, 0, False

    def __call__(self, inp):
        return np.zeros((100, 6), np.float32)


def test_eval_skips_images_over_the_pixel_limit_and_warns_on_size_mismatches(synthetic_coco, tmp_path, capsys,
                                                                              monkeypatch):
    """Bad input: a 20000x20000 PNG and an image whose json width/height are swapped, in eval data | the PNG is skipped, named, and left out of the metrics; the mismatch is named in a warning."""
    from data_helpers import huge_png
    images = tmp_path / "images"
    shutil.copytree(synthetic_coco.val_images, images)
    doc = json.loads(open(synthetic_coco.val_ann).read())
    huge, other = doc["images"][1], doc["images"][4]
    huge_png(images / huge["file_name"], 20000, 20000)
    other["width"], other["height"] = other["height"], other["width"]
    ann = tmp_path / "val.json"
    ann.write_text(json.dumps(doc))
    monkeypatch.setattr(eval_script, "build_predictor", lambda *args: _BlankDetector())
    code, out = _run_eval(tmp_path, synthetic_coco, "unused.ckpt", {"eval_ann_file": str(ann),
                                                                    "eval_image_dir": str(images)})
    err = capsys.readouterr().err
    assert code == 0, err
    assert "skipped: %s is 20000x20000 (400.0 megapixels), over dataset_config.max_image_pixels=64000000" \
        % (images / huge["file_name"]) in err
    assert "%s is %dx%d but the annotation file gives %dx%d" % (other["file_name"], other["height"], other["width"],
                                                                other["width"], other["height"]) in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 7 and metrics["num_skipped"] == 1


def test_an_impossible_result_folder_is_refused_before_the_network_is_built(synthetic_coco, ckpt, tmp_path, capsys):
    """Bad input: --save_result_dir is a file, or lies under a file | 'cannot write to <folder> (--save_result_dir): <file> is a file, not a folder; choose another --save_result_dir', exit 2, before the network is built or any image read."""
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    for folder in (blocker, blocker / "sub"):
        code = eval_script.main(argv(dict(FIXED, device_target="CPU", data_dir=synthetic_coco.root,
                                          load_checkpoint_path=ckpt, save_result_dir=str(folder))))
        err = capsys.readouterr().err
        assert code == 2 and "loaded" not in err
        assert err.strip().endswith("ERROR centernet: cannot write to %s (--save_result_dir): %s is a file, not a "
                                    "folder; choose another --save_result_dir" % (folder, blocker))
    assert blocker.read_text() == "a file"


def test_a_result_folder_in_use_by_another_evaluation_is_refused(synthetic_coco, ckpt, tmp_path, capsys):
    """Bad input: --save_result_dir of an evaluation still running | '<folder> is in use by another evaluation (pid N on host H): wait for it to finish, or choose another --save_result_dir', exit 2, its files untouched."""
    from src.model_utils.file_io import FolderLock
    out = tmp_path / "out"
    with FolderLock(str(out)).acquire("evaluation"):
        (out / "results.json").write_text("[]")
        code, _ = _run_eval(tmp_path, synthetic_coco, ckpt)
        err = capsys.readouterr().err
    assert code == 2 and "loaded" not in err
    assert re.search(r"ERROR centernet: %s is in use by another evaluation \(pid %d on host .+\): wait for it to "
                     r"finish, or choose another --save_result_dir$" % (re.escape(str(out)), os.getpid()), err.strip())
    assert (out / "results.json").read_text() == "[]" and file_names(out) == [".lock", "results.json"]
