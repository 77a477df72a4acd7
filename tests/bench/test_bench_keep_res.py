"""bench/bench_keep_res.py: the two data sets hold the same images and input pixels, one shape against many;
run_all.py reports its figures."""
import collections
import json
import os
import sys

import cv2
import numpy as np
import pytest

from bench import bench_keep_res, report
from conftest import ROOT


def _doc(root):
    with open(os.path.join(root, "annotations", "instances_val2017.json"), encoding="utf-8") as f:
        return json.load(f)


def test_the_single_size_set_matches_the_mix_in_images_and_pixels(tmp_path):
    mix, one, facts = bench_keep_res.make_sets(str(tmp_path), 40, seed=1, min_shapes=15)
    mixed, single = _doc(mix), _doc(one)
    shapes = collections.Counter((bench_keep_res.padded(i["height"]), bench_keep_res.padded(i["width"]))
                                 for i in mixed["images"])
    assert facts["mix_shapes"] == len(shapes) >= 15 and facts["images"] == len(single["images"]) == 40
    assert all(300 <= min(i["width"], i["height"]) and max(i["width"], i["height"]) <= 640 for i in mixed["images"])
    assert {(i["height"], i["width"]) for i in single["images"]} == {tuple(facts["one_size"])}
    assert abs(facts["one_pixels"] / facts["mix_pixels"] - 1) < 0.03
    height, width = facts["one_size"]
    for entry in single["images"]:
        image = cv2.imread(os.path.join(one, "val2017", entry["file_name"]), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (height, width)
    # Boxes follow their image: same count, inside the resized image, scaled by the size ratio.
    assert len(single["annotations"]) == len(mixed["annotations"])
    sizes = {i["id"]: (i["width"], i["height"]) for i in mixed["images"]}
    for before, after in zip(mixed["annotations"], single["annotations"]):
        w0, h0 = sizes[before["image_id"]]
        np.testing.assert_allclose(after["bbox"], np.array(before["bbox"]) * ([width / w0, height / h0] * 2))
        assert after["bbox"][0] + after["bbox"][2] <= width + 1e-6


def test_too_few_shapes_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="distinct padded shapes, fewer than 99"):
        bench_keep_res.make_sets(str(tmp_path), 5, seed=0, min_shapes=99)


def test_run_all_reports_the_keep_res_figures(tmp_path):
    run = {"total_s": 100.0, "outside_network_share": 0.2, "compile_share": 0.05, "other_share": 0.15}
    recorded = {"keep_res": {
        "command": [sys.executable, os.path.join(ROOT, "bench", "bench_keep_res.py"), "--rounds", "2"],
        "figures": {"images": 100, "config": "ResNet-101-DCN", "mix_shapes": 42, "rounds": 2, "ratio": 1.234,
                    "process_ratio": 1.2, "mix": run, "one": dict(run, total_s=81.0, outside_network_share=0.1),
                    "forward": {"dynamic_compile_s": 9.5, "static_compile_s": 4.25, "repeats": 5,
                                "shapes": {"512x672": {"dynamic_s": 1.1, "static_s": 1.0, "ratio": 1.1}}}},
        "date": "2026-12-03 14:00", "load_average": [1.0, 1.0, 1.0], "repeats": 3}}
    path = str(tmp_path / "PERFORMANCE.md")
    report.write_markdown(path, recorded)
    text = open(path, encoding="utf-8").read()
    assert "| 1.23 (100.0 s / 81.0 s; whole processes 1.20) |" in text
    assert "9.5 s / 4.2 s" in text and "1.100 s / 1.000 s (ratio 1.10)" in text
    assert "20 % (compilation 5 %, the rest 15 %); one size: 10 %" in text
    assert "`python bench/bench_keep_res.py --rounds 2`" in text


def test_run_all_reports_the_exported_keep_res_figures(tmp_path):
    run = {"total_s": 50.0, "outside_network_share": 0.3, "compile_share": 0.02, "other_share": 0.28}
    recorded = {"keep_res_openvino": {
        "command": [sys.executable, os.path.join(ROOT, "bench", "bench_keep_res.py"), "--runtime", "openvino"],
        "figures": {"images": 100, "config": "ResNet-101-DCN", "mix_shapes": 42, "rounds": 2, "ratio": 1.05,
                    "process_ratio": 1.04, "mix": run, "one": dict(run, total_s=47.6), "runtime": "openvino",
                    "precision": "bf16",
                    "forward": {"dynamic_compile_s": 3.0, "static_compile_s": 2.5, "repeats": 5,
                                "shapes": {"512x672": {"dynamic_s": 0.25, "static_s": 0.24, "ratio": 1.04}}}},
        "date": "2026-12-06 22:00", "load_average": [1.0, 1.0, 1.0], "repeats": 3}}
    path = str(tmp_path / "PERFORMANCE.md")
    report.write_markdown(path, recorded)
    text = open(path, encoding="utf-8").read()
    assert "42 padded shapes (one dynamic-shape ONNX on openvino) / one size of the same pixel count (the same " \
           "model) | 1.05 (50.0 s / 47.6 s; whole processes 1.04) |" in text
    assert "ResNet-101-DCN, openvino bf16" in text
    assert "model load: dynamic-shape ONNX / one fixed-shape ONNX | 3.0 s / 2.5 s" in text
    assert "0.250 s / 0.240 s (ratio 1.04)" in text


def test_exported_forward_child_times_the_dynamic_model_against_fixed_ones(small_onnx, tmp_path):
    """The exported models' forward figures of bench_keep_res.py, on the test network's ONNX files."""
    out = tmp_path / "forward.json"
    spec = {"runtime": "onnxruntime", "precision": "fp32", "dynamic": small_onnx.dynamic, "fixed": [small_onnx.fixed]}
    bench_keep_res.child_forward_exported(spec, [[128, 128]], 2, str(out))
    result = json.loads(out.read_text())
    assert list(result["shapes"]) == ["128x128"] and result["repeats"] == 2
    figures = result["shapes"]["128x128"]
    assert min(figures["static_s"], figures["dynamic_s"], result["dynamic_compile_s"]) > 0
    assert figures["ratio"] > 0
