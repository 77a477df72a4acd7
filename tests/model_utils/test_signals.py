"""Ctrl-C and SIGTERM sent to real entry processes (src/model_utils/signals.py): one line, exit 130 / 143,
nothing written."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from eval_helpers import SMALL, argv, small_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE = 120  # seconds for any one process: a loaded 2-core machine imports MindSpore in several


def _start(args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _signals_blocked(pid):
    """Whether the main thread of ``pid`` blocks SIGINT: signals.install() has run."""
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", f.read(), re.M).group(1), 16)
    return bool(blocked & (1 << (signal.SIGINT - 1)))


def _finish(proc):
    out, _ = proc.communicate(timeout=DEADLINE)
    return proc.returncode, out


def _wait_for_line(proc, pattern):
    """Read the output until a line matches ``pattern``; returns the lines read."""
    lines, start = [], time.monotonic()
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return lines
        assert time.monotonic() - start < DEADLINE, "".join(lines)
    raise AssertionError("the process ended before %r:\n%s" % (pattern, "".join(lines)))


def _assert_stopped(code, out, expected_code, word):
    assert code == expected_code, out
    errors = [line for line in out.splitlines() if "ERROR" in line]  # (a progress bar may print after it)
    if not errors:  # stopped before logging was set up: the bare word
        errors = [line for line in out.splitlines() if line.strip()][-1:]
    assert len(errors) == 1 and errors[0].endswith(word), out
    assert "Traceback" not in out and "Fatal Python error" not in out, out


@pytest.fixture(name="many_images")
def many_images_fixture(synthetic_coco, tmp_path):
    """synthetic_coco's val split listed 6 times (48 entries, the same 8 files): a detection loop that lasts."""
    doc = json.loads(open(synthetic_coco.val_ann).read())
    images = [dict(image, id=image["id"] + 1000 * k) for k in range(6) for image in doc["images"]]
    anns = [dict(ann, id=ann["id"] + 100000 * k, image_id=ann["image_id"] + 1000 * k)
            for k in range(6) for ann in doc["annotations"]]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(dict(doc, images=images, annotations=anns)))
    return str(path)


def test_ctrl_c_while_eval_detects(synthetic_coco, many_images, tmp_path):
    """Fault: Ctrl-C while eval.py detects (MindSpore's runtime has installed its own SIGINT handler) | 'interrupted', exit 130, no traceback; no results.json, no drawings, no temporaries."""
    ckpt = small_checkpoint(tmp_path / "small.ckpt")
    out = tmp_path / "out"
    proc = _start(["eval.py"] + argv(dict(SMALL, **{
        "device_target": "CPU", "eval_config.keep_res": False, "dataset_config.input_res_test": [128, 128],
        "eval_ann_file": many_images, "eval_image_dir": synthetic_coco.val_images, "load_checkpoint_path": ckpt,
        "save_result_dir": str(out), "visual_image": True})))
    _wait_for_line(proc, r"compiled one static")  # the graph has run: MindSpore's handler is in place
    proc.send_signal(signal.SIGINT)
    code, text = _finish(proc)
    _assert_stopped(code, text, 130, "ERROR centernet: interrupted")
    assert sorted(os.listdir(out)) == [".lock"]


def test_ctrl_c_while_the_converter_imports_mindspore_and_sigterm_while_it_converts(synthetic_coco, tmp_path):
    """Fault: Ctrl-C 0.05-1 s after the converter starts (MindSpore still importing), SIGTERM while it starts its reading pool | 'interrupted' exit 130 / 'terminated' exit 143, no 'Fatal Python error', no traceback, no shard and no temporary folder."""
    out = tmp_path / "mr"
    base = ["src/dataset.py", "--train_ann_file=" + synthetic_coco.train_ann,
            "--train_image_dir=" + synthetic_coco.train_images, "--mindrecord_dir=" + str(out), "--convert_workers=1"]
    for delay in (0.05, 0.3, 1.0):
        proc = _start(base)
        start = time.monotonic()
        while not _signals_blocked(proc.pid):
            assert proc.poll() is None and time.monotonic() - start < DEADLINE
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        code, text = _finish(proc)
        _assert_stopped(code, text, 130, "interrupted")
        assert not out.exists() or os.listdir(out) == [], (delay, os.listdir(out))

    doc = json.loads(open(synthetic_coco.train_ann).read())  # 24 images listed 20 times: a conversion that lasts
    images = [dict(image, id=image["id"] + 1000 * k) for k in range(20) for image in doc["images"]]
    many = tmp_path / "many.json"
    many.write_text(json.dumps(dict(doc, images=images, annotations=[])))
    proc = _start([base[0], "--train_ann_file=%s" % many] + base[2:-1] + ["--convert_workers=2"])
    _wait_for_line(proc, r"output folder .*mr: .* free")  # its work starts: the reading pool is being forked
    proc.send_signal(signal.SIGTERM)
    code, text = _finish(proc)
    _assert_stopped(code, text, 143, "ERROR centernet: terminated")
    assert not out.exists() or os.listdir(out) == [], os.listdir(out)
