"""The Ascend 310 chain: preprocess -> MINDIR (Python runner or the C++ app) -> postprocess.

The MINDIR runner (tools/infer_mindir.py) stands in for the Ascend 310 app through
run_infer_310.sh's INFER_APP hook, and the chain must reproduce eval.py's fixed-resolution
results exactly. The C++ app is compiled against a test double of the MindSpore C++ API
(tests/ascend310_stub: NOT MindSpore, see its README) to prove it builds and handles its files.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import eval as eval_script
import export as export_script
import postprocess as postprocess_script
import preprocess as preprocess_script
from conftest import ROOT, SMALL, override_yaml, require_tool
from eval_helpers import FIXED, RES, argv, pseudo_ground_truth, small_checkpoint
from src.infer.coco_eval import STAT_NAMES
from tools import infer_mindir

SCRIPT = os.path.join(ROOT, "scripts", "run_infer_310.sh")
STUB = os.path.join(ROOT, "tests", "ascend310_stub")
SMALL_YAML = override_yaml(dict(SMALL, **{"export_config.input_res": RES}))


@pytest.fixture(name="model", scope="module")
def model_fixture(tmp_path_factory, synthetic_coco):
    """A small checkpoint, its MINDIR, and a COCO root whose ground truth the network partly finds."""
    base = tmp_path_factory.mktemp("chain_model")
    ckpt = small_checkpoint(base / "small.ckpt")
    first = base / "first"
    assert eval_script.main(argv(dict(FIXED, device_target="CPU", data_dir=synthetic_coco.root,
                                      load_checkpoint_path=ckpt, save_result_dir=str(first)))) == 0
    root = base / "coco"
    (root / "annotations").mkdir(parents=True)
    os.symlink(synthetic_coco.val_images, root / "val2017")
    records = json.loads((first / "results.json").read_text())
    pseudo_ground_truth(synthetic_coco.val_ann, records, root / "annotations" / "instances_val2017.json")
    assert export_script.main(argv(dict(FIXED, device_target="CPU", export_load_ckpt=ckpt,
                                        export_name=str(base / "centernet")))) == 0
    return {"ckpt": ckpt, "mindir": str(base / "centernet.mindir"), "root": str(root)}


def test_chain_through_run_infer_310_reproduces_eval_exactly(model, tmp_path):
    out = tmp_path / "eval"
    assert eval_script.main(argv(dict(FIXED, device_target="CPU", data_dir=model["root"],
                                      load_checkpoint_path=model["ckpt"], save_result_dir=str(out)))) == 0
    expected = json.loads((out / "metrics.json").read_text())
    assert expected["AP"] > 0.05  # a non-trivial figure to reproduce

    work = tmp_path / "work"
    work.mkdir()
    (work / "small.yaml").write_text(SMALL_YAML)
    env = dict(os.environ, PYTHON=sys.executable, CONFIG_PATH="small.yaml",
               INFER_APP="%s %s --device_target=CPU" % (sys.executable, os.path.join(ROOT, "tools", "infer_mindir.py")))
    proc = subprocess.run(["bash", SCRIPT, model["mindir"], model["root"], "y", "0"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr + _logs(work)
    metrics = json.loads((work / "metrics.json").read_text())
    assert [metrics[n] for n in STAT_NAMES] == [expected[n] for n in STAT_NAMES]
    assert json.loads((work / "results.json").read_text()) == json.loads((out / "results.json").read_text())
    acc = (work / "acc.log").read_text().splitlines()
    assert acc[0] == postprocess_script.ACC_HEADING and len(acc) == 13
    assert acc[1].endswith("= %.3f" % expected["AP"]) and "acc" not in proc.stderr
    assert sorted(os.listdir(work / "preprocess_Result" / "images")) == \
        sorted("%d.bin" % i for i in _image_ids(model["root"]))
    assert sorted(os.listdir(work / "result_Files")) == sorted("%d_0.bin" % i for i in _image_ids(model["root"]))

    # PREPROCESS_IMAGES=n goes straight to inference on the existing inputs (here a failing app).
    stamp = os.path.getmtime(work / "preprocess_Result" / "preprocess_info.json")
    proc = subprocess.run(["bash", SCRIPT, model["mindir"], model["root"], "n"], cwd=work,
                          env=dict(env, INFER_APP="false"), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "inference failed" in proc.stderr
    assert os.path.getmtime(work / "preprocess_Result" / "preprocess_info.json") == stamp


def _image_ids(root):
    with open(os.path.join(root, "annotations", "instances_val2017.json"), encoding="utf-8") as f:
        return [i["id"] for i in json.load(f)["images"]]


def _logs(work):
    text = ""
    for name in ("preprocess.log", "infer.log", "postprocess.log"):
        if (work / name).exists():
            text += "\n--- %s\n%s" % (name, (work / name).read_text()[-3000:])
    return text


@pytest.mark.parametrize("args, message", [
    ([], "Usage"),
    (["a", "b", "y", "0", "extra"], "Usage"),
    (["{missing}", "{data}", "y"], "MINDIR_PATH"),
    (["{model}", "{missing}", "y"], "DATASET_PATH"),
    (["{model}", "{data}", "maybe"], "PREPROCESS_IMAGES must be y or n"),
    (["{model}", "{data}", "y", "-1"], "DEVICE_ID must be a non-negative integer"),
    (["{model}", "{data}", "n"], "run with y first"),
])
def test_run_infer_310_checks_its_arguments(tmp_path, args, message):
    model = tmp_path / "m.mindir"
    model.write_bytes(b"x")
    names = {"model": str(model), "data": str(tmp_path), "missing": str(tmp_path / "missing")}
    proc = subprocess.run(["bash", SCRIPT] + [a.format(**names) for a in args], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(os.environ, INFER_APP="false"), timeout=60)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (tmp_path / "acc.log").exists()


def test_postprocess_refuses_missing_or_malformed_outputs(synthetic_coco, tmp_path, capsys):
    common = dict(FIXED, val_data_dir=synthetic_coco.root, pre_result_path=str(tmp_path / "pre"),
                  eval_max_images=3)
    assert preprocess_script.main(argv(common)) == 0
    ids = sorted(int(n[:-4]) for n in os.listdir(tmp_path / "pre" / "images"))
    assert len(ids) == 3 and len(os.listdir(tmp_path / "pre" / "meta")) == 3
    results = tmp_path / "res"
    results.mkdir()
    for image_id in ids[:2]:
        np.zeros((1, 10, 6), np.float32).tofile(results / ("%d_0.bin" % image_id))
    options = dict(common, result_path=str(results), save_result_dir=str(tmp_path / "out"))
    assert postprocess_script.main(argv(options)) != 0
    assert "%d_0.bin" % ids[2] in capsys.readouterr().err and not (tmp_path / "out").exists()
    np.zeros(7, np.float32).tofile(results / ("%d_0.bin" % ids[2]))
    assert postprocess_script.main(argv(options)) != 0
    assert "not (1, K, 6)" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_python_runner_files_and_wrong_input_size(tmp_path, capsys):
    import mindspore as ms
    from mindspore import Tensor, nn

    class Twice(nn.Cell):
        def construct(self, x):
            return x * 2
    ms.export(Twice(), Tensor(np.zeros((1, 3, 8, 4), np.float32)), file_name=str(tmp_path / "twice"),
              file_format="MINDIR")
    inputs = tmp_path / "in"
    inputs.mkdir()
    data = np.arange(96, dtype=np.float32).reshape(1, 3, 8, 4)
    data.tofile(inputs / "17.bin")
    args = ["--mindir_path", str(tmp_path / "twice.mindir"), "--input_path", str(inputs),
            "--output_path", str(tmp_path / "out")]
    assert infer_mindir.main(args) == 0
    assert os.listdir(tmp_path / "out") == ["17_0.bin"]
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out" / "17_0.bin", np.float32), 2 * data.reshape(-1))
    np.zeros((1, 3, 4, 4), np.float32).tofile(inputs / "18.bin")
    assert infer_mindir.main(args) != 0 and "18.bin holds 192 bytes" in capsys.readouterr().err


def _build_app(tmp_path):
    """Compile the stub runtime as libmindspore.so and the app against it (cmake via build.sh, else g++)."""
    ms_path = tmp_path / "mindspore"
    (ms_path / "lib").mkdir(parents=True)
    shutil.copytree(os.path.join(STUB, "include"), ms_path / "include")
    compile_lib = ["g++", "-std=c++17", "-D_GLIBCXX_USE_CXX11_ABI=0", "-Wall", "-Werror", "-fPIC", "-shared",
                   "-I", str(ms_path), "-o", str(ms_path / "lib" / "libmindspore.so"),
                   os.path.join(STUB, "stub_runtime.cc")]
    subprocess.run(compile_lib, check=True, capture_output=True, timeout=300)
    build = tmp_path / "build"
    if shutil.which("cmake") and shutil.which("make"):
        env = dict(os.environ, MINDSPORE_PATH=str(ms_path), BUILD_DIR=str(build))
        proc = subprocess.run(["bash", os.path.join(ROOT, "ascend310_infer", "build.sh")], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        build.mkdir()
        app_dir = os.path.join(ROOT, "ascend310_infer")
        subprocess.run(["g++", "-std=c++17", "-D_GLIBCXX_USE_CXX11_ABI=0", "-Wall", "-Werror", "-I", str(ms_path),
                        "-I", app_dir, os.path.join(app_dir, "src", "main.cc"),
                        os.path.join(app_dir, "src", "utils.cc"),
                        "-L", str(ms_path / "lib"), "-lmindspore", "-Wl,-rpath," + str(ms_path / "lib"),
                        "-o", str(build / "main")], check=True, capture_output=True, timeout=300)
    return str(build / "main")


def test_ascend310_app_builds_and_handles_its_files_with_a_stub_runtime(synthetic_coco, tmp_path, capsys):
    require_tool("g++", "compiles the Ascend 310 app and the stub runtime")
    app = _build_app(tmp_path)
    pre = tmp_path / "pre"
    common = dict(FIXED, val_data_dir=synthetic_coco.root, pre_result_path=str(pre), eval_max_images=3)
    assert preprocess_script.main(argv(common)) == 0
    env = dict(os.environ, STUB_INPUT_SHAPE="1,3,%d,%d" % tuple(RES), STUB_OUTPUT_K="7")
    run = [app, "--mindir_path=" + str(tmp_path / "build" / "main"), "--input_path=" + str(pre / "images"),
           "--output_path=" + str(tmp_path / "res"), "--time_path=" + str(tmp_path / "time"), "--device_id=0"]
    proc = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(os.listdir(pre / "images"))
    assert sorted(os.listdir(tmp_path / "res")) == sorted(n[:-4] + "_0.bin" for n in names)
    for name in names:   # each output came from its own input (the stub puts the first input value in x1)
        first = np.fromfile(pre / "images" / name, np.float32)[0]
        dets = np.fromfile(tmp_path / "res" / (name[:-4] + "_0.bin"), np.float32).reshape(7, 6)
        np.testing.assert_allclose(dets[:, 0], first + np.arange(7), rtol=1e-6)
    assert "infer_count 3" in (tmp_path / "time" / "test_perform_static.txt").read_text()
    # postprocess consumes the app's files
    options = dict(common, result_path=str(tmp_path / "res"), save_result_dir=str(tmp_path / "out"))
    assert postprocess_script.main(argv(options)) == 0
    assert (tmp_path / "out" / "acc.log").read_text().startswith(postprocess_script.ACC_HEADING)
    # failures: an input of the wrong size, a missing model, a bad option
    bad = subprocess.run(run, env=dict(env, STUB_INPUT_SHAPE="1,3,32,32"), capture_output=True, text=True)
    assert bad.returncode != 0 and "needs 12288" in bad.stderr
    bad = subprocess.run([app, "--mindir_path=/nonexistent", "--input_path=" + str(pre / "images")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "MINDIR not found" in bad.stderr
    bad = subprocess.run([app, "--mindir=x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --mindir" in bad.stderr


def test_preprocess_skips_images_over_the_pixel_limit(synthetic_coco, tmp_path, capsys):
    """Bad input: a 20000x20000 PNG among preprocess.py's images | skipped with a warning naming it and max_image_pixels, listed in preprocess_info.json; the others are prepared."""
    from data_helpers import huge_png
    images = tmp_path / "images"
    shutil.copytree(synthetic_coco.val_images, images)
    doc = json.loads(open(synthetic_coco.val_ann).read())
    huge = sorted(doc["images"], key=lambda e: e["id"])[1]
    huge_png(images / huge["file_name"], 20000, 20000)
    pre = tmp_path / "pre"
    assert preprocess_script.main(argv(dict(FIXED, eval_ann_file=synthetic_coco.val_ann, eval_image_dir=str(images),
                                            pre_result_path=str(pre), eval_max_images=3))) == 0
    assert "over dataset_config.max_image_pixels=64000000" in capsys.readouterr().err
    info = json.loads((pre / "preprocess_info.json").read_text())
    assert info["skipped"] == [huge["id"]] and info["num_images"] == 2
    assert len(os.listdir(pre / "images")) == 2 and "%d.bin" % huge["id"] not in os.listdir(pre / "images")
