"""src/dataset.py: COCO -> MindRecord conversion, the converted layout and the command line."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from src import dataset as D
from src.data.coco import DataError
from src.data.train_targets import _as_objects
from data_helpers import exif_jpeg, load_json as _load, mindrecord_rows as _rows, no_hang
from src.data.image_file import ImageLimits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy_coco(coco, dst):
    """A writable copy of the synthetic train split: (ann_file, image_dir)."""
    image_dir = os.path.join(dst, "train2017")
    shutil.copytree(coco.train_images, image_dir)
    ann_file = os.path.join(dst, "instances_train2017.json")
    shutil.copy(coco.train_ann, ann_file)
    return ann_file, image_dir



# ----------------------------------------------------------------------------- conversion

def test_round_trip_bytes_boxes_classes_and_empty_image(synthetic_coco, synthetic_mindrecord):
    doc = _load(synthetic_coco.train_ann)
    cat_index = {c["id"]: k for k, c in enumerate(sorted(doc["categories"], key=lambda c: c["id"]))}
    rows = _rows(synthetic_mindrecord.mindrecord_dir)
    assert len(rows) == synthetic_coco.num_train == synthetic_mindrecord.num_images
    empty_seen = False
    for entry in doc["images"]:
        row = rows[entry["id"]]
        with open(os.path.join(synthetic_coco.train_images, entry["file_name"]), "rb") as f:
            assert row["image"].tobytes() == f.read()
        anns = [a for a in doc["annotations"] if a["image_id"] == entry["id"]]
        boxes, classes, crowd = _as_objects(row["bboxes"], row["category_id"], row["iscrowd"])
        expected = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                             for a in anns], np.float32).reshape(-1, 4)
        assert np.array_equal(boxes, expected)
        assert classes.tolist() == [cat_index[a["category_id"]] for a in anns]
        assert crowd.tolist() == [a["iscrowd"] for a in anns]
        if not anns:
            empty_seen = True
            assert row["bboxes"].shape == ()  # MindRecord's empty-array quirk that _as_objects undoes
            assert boxes.shape == (0, 4)
    assert empty_seen


def test_meta_sidecar_describes_classes(synthetic_coco, synthetic_mindrecord):
    meta = D.read_meta(synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix)
    cats = sorted(_load(synthetic_coco.train_ann)["categories"], key=lambda c: c["id"])
    assert [(c["index"], c["id"], c["name"]) for c in meta["categories"]] == \
        [(k, c["id"], c["name"]) for k, c in enumerate(cats)]
    assert meta["num_classes"] == 5 and meta["num_images"] == 24 and meta["num_skipped"] == 0
    assert meta["shards"] == 2
    files = D.mindrecord_files(synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix)
    assert [os.path.basename(f) for f in files] == ["coco_det.train.mind0", "coco_det.train.mind1"]


def test_corrupt_missing_images_skipped_and_bad_boxes_dropped(synthetic_coco, tmp_path):
    """Bad input: corrupt or missing image files | the converter skips them, logs each by name and counts the reasons in its summary and meta."""
    ann_file, image_dir = _copy_coco(synthetic_coco, str(tmp_path))
    doc = _load(ann_file)
    corrupt, missing = doc["images"][5], doc["images"][6]
    with open(os.path.join(image_dir, corrupt["file_name"]), "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg" * 50)
    os.remove(os.path.join(image_dir, missing["file_name"]))
    doc["annotations"].append(dict(doc["annotations"][0], id=10 ** 6, bbox=[5, 5, 0, 7]))
    doc["annotations"].append(dict(doc["annotations"][0], id=10 ** 6 + 1, bbox=[5, 5, 3, -1]))
    with open(ann_file, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    out = str(tmp_path / "mr")
    summary = D.coco_to_mindrecord(ann_file, image_dir, out, "p.mind", shards=3, workers=2)
    assert summary["num_images"] == 22 and summary["num_skipped"] == 2
    assert summary["skipped_reasons"] == {"undecodable": 1, "missing": 1}
    assert {(s["image_id"], s["reason"]) for s in summary["skipped"]} == \
        {(corrupt["id"], "undecodable"), (missing["id"], "missing")}
    assert summary["num_dropped_annotations"] == 2
    assert summary["dropped_annotations"] == {"zero_size": 2, "non_finite": 0, "outside_image": 0, "unknown_image": 0}
    rows = _rows(out, "p.mind")
    assert len(rows) == 22 and corrupt["id"] not in rows and missing["id"] not in rows
    first = rows[doc["annotations"][0]["image_id"]]
    assert _as_objects(first["bboxes"], first["category_id"], first["iscrowd"])[0].shape[0] == \
        sum(1 for a in doc["annotations"][:-2] if a["image_id"] == doc["annotations"][0]["image_id"])
    assert D.read_meta(out, "p.mind")["skipped_reasons"] == {"undecodable": 1, "missing": 1}


def test_fifos_folders_and_size_mismatches_are_skipped_without_a_hang_or_a_leftover(synthetic_coco, tmp_path, caplog):
    """Bad input: image files that are a FIFO or a folder, or differ in size from the json | the converter skips and counts them, naming each; no hang, no .tmp folder left."""
    ann_file, image_dir = _copy_coco(synthetic_coco, str(tmp_path))
    doc = _load(ann_file)
    fifo, folder, other, turned = doc["images"][1:5]
    os.remove(os.path.join(image_dir, fifo["file_name"]))
    os.mkfifo(os.path.join(image_dir, fifo["file_name"]))
    os.remove(os.path.join(image_dir, folder["file_name"]))
    os.mkdir(os.path.join(image_dir, folder["file_name"]))
    other["width"], other["height"] = other["height"], other["width"]
    # An EXIF-rotated JPEG whose json size is the stored one (as COCO annotates): kept.
    pixels = np.full((turned["height"], turned["width"], 3), 128, np.uint8)
    exif_jpeg(os.path.join(image_dir, "turned.jpg"), pixels)
    turned["file_name"] = "turned.jpg"
    assert other["width"] != other["height"] and turned["width"] != turned["height"]
    big = dict(doc["images"][0], id=10 ** 6, file_name="big.png", width=400, height=300)
    doc["images"].append(big)
    D.cv2.imwrite(os.path.join(image_dir, "big.png"), np.zeros((300, 400, 3), np.uint8))
    with open(ann_file, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    out = str(tmp_path / "mr")
    with no_hang(10):
        summary = D.coco_to_mindrecord(ann_file, image_dir, out, "p.mind", shards=2, workers=1,
                                       limits=ImageLimits(100000, 1 << 28))
    assert summary["skipped_reasons"] == {"not a regular file": 2, "size differs from the json": 1}
    assert {s["image_id"] for s in summary["skipped"]} == {fifo["id"], folder["id"], other["id"]}
    assert summary["num_images"] == 22 and summary["images_over_max_image_pixels"] == 1
    assert "is a FIFO (named pipe), not a regular file" in caplog.text and fifo["file_name"] in caplog.text
    assert "%s is %dx%d but the json gives %dx%d" % (other["file_name"], other["height"], other["width"],
                                                     other["width"], other["height"]) in caplog.text
    assert "big.png is 400x300 (0.1 megapixels), over dataset_config.max_image_pixels=100000" in caplog.text
    assert not [n for n in os.listdir(out) if n.startswith(".")]
    assert sorted(_rows(out, "p.mind")) == sorted(set(i["id"] for i in doc["images"]) - {fifo["id"], folder["id"],
                                                                                          other["id"]})


def test_existing_output_needs_overwrite(synthetic_coco, tmp_path):
    """Bad input: converting onto an existing dataset of the same prefix | an error naming the folder and --overwrite; the old dataset is kept."""
    out = str(tmp_path / "mr")
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=3, workers=1)
    with pytest.raises(FileExistsError, match="p.mind") as err:
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=1, workers=1)
    assert out in str(err.value)
    assert len(D.mindrecord_files(out, "p.mind")) == 3
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=1,
                         workers=1, overwrite=True)
    assert sorted(os.listdir(out)) == ["p.mind", "p.mind.db", "p.mind.meta.json"]
    assert len(_rows(out, "p.mind")) == 24
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "other", shards=1, workers=1)
    assert sorted(os.listdir(out)) == ["other", "other.db", "other.meta.json", "p.mind", "p.mind.db",  # a different
                                       "p.mind.meta.json", "p.mind.verified.json"]                   # prefix coexists


def test_missing_inputs_raise_naming_the_path_and_write_nothing(synthetic_coco, tmp_path):
    """Bad input: a missing annotation file or image folder, malformed json | an error naming the path; nothing written."""
    out = str(tmp_path / "mr")
    missing_ann = str(tmp_path / "nope.json")
    with pytest.raises(DataError, match="nope.json"):
        D.coco_to_mindrecord(missing_ann, synthetic_coco.train_images, out)
    with pytest.raises(DataError, match="no_images"):
        D.coco_to_mindrecord(synthetic_coco.train_ann, str(tmp_path / "no_images"), out)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        D.coco_to_mindrecord(str(bad), synthetic_coco.train_images, out)
    bad.write_text('{"annotations": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        D.coco_to_mindrecord(str(bad), synthetic_coco.train_images, out)
    assert not os.path.exists(out)


def test_unknown_category_is_an_error_and_orphan_annotations_are_dropped(synthetic_coco, tmp_path):
    """Bad input: an annotation with a category not in 'categories', or of an unknown image | an error naming the annotation and category; orphan annotations dropped and counted."""
    doc = _load(synthetic_coco.train_ann)
    doc["annotations"].append(dict(doc["annotations"][0], id=10 ** 6, image_id=424242))
    orphan = tmp_path / "orphan.json"
    orphan.write_text(json.dumps(doc), encoding="utf-8")
    summary = D.coco_to_mindrecord(str(orphan), synthetic_coco.train_images, str(tmp_path / "mr"), workers=1)
    assert summary["dropped_annotations"]["unknown_image"] == 1 and summary["num_images"] == 24
    doc["annotations"][-1] = dict(doc["annotations"][0], id=10 ** 6, category_id=999)
    unknown = tmp_path / "unknown_cat.json"
    unknown.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown_cat.json.*999"):
        D.coco_to_mindrecord(str(unknown), synthetic_coco.train_images, str(tmp_path / "mr2"), workers=1)
    assert not os.path.exists(str(tmp_path / "mr2"))


def test_failure_mid_write_leaves_no_partial_output(synthetic_coco, tmp_path, monkeypatch):
    """Fault: the MindRecord writer fails mid-conversion | the error propagates; no shard, index or temporary folder is left."""
    from mindspore.mindrecord import FileWriter
    out = str(tmp_path / "mr")
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=2, workers=1)
    before = {n: (tmp_path / "mr" / n).read_bytes() for n in os.listdir(out)}
    calls = []

    def failing_write(self, rows, parallel_writer=False):
        calls.append(len(rows))
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(FileWriter, "write_raw_data", failing_write)
    with pytest.raises(OSError, match="simulated"):
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=2,
                             workers=1, overwrite=True)
    assert calls
    assert {n: (tmp_path / "mr" / n).read_bytes() for n in os.listdir(out)} == before
    fresh = str(tmp_path / "fresh")
    with pytest.raises(OSError):
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, fresh, "p.mind", workers=1)
    assert not os.path.exists(fresh)


def test_a_disk_without_room_for_the_shards(synthetic_coco, small_disk, monkeypatch):
    """Fault: converting onto a disk without room (a real 1 MB tmpfs), or one that fills during the conversion | before any image is read: 'not enough space in <folder> (--mindrecord_dir) to start: it needs about 10.2 MB, 1.0 MB are free'; filling: 'no space left on the device to save MindRecord shards <folder>/<prefix>*: ...'; no shard, no temporary folder."""
    from src.model_utils.file_io import DiskFullError
    disk = small_disk("1m")
    with pytest.raises(DiskFullError, match=r"^not enough space in %s \(--mindrecord_dir\) to start: it needs about "
                                            r"10\.\d MB, 1\.0 MB are free; free some space or choose another "
                                            r"--mindrecord_dir$" % re.escape(str(disk / "mr"))):
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, str(disk / "mr"), "p.mind",
                             shards=2, workers=1)
    assert os.listdir(disk) == []
    monkeypatch.setattr(D, "estimated_nbytes", lambda images, image_dir: 0)  # the disk fills after the check
    with pytest.raises(DiskFullError, match=r"^no space left on the device to save MindRecord shards %s: it needs "
                                            r"more than was free, 1\.0 MB are free in %s; "
                                            % (re.escape(str(disk / "p.mind*")), re.escape(str(disk)))):
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, str(disk), "p.mind",
                             shards=2, workers=1)
    assert os.listdir(disk) == []


def test_all_images_unreadable_is_an_error_without_output(synthetic_coco, tmp_path):
    """Bad input: no readable image at all | an error naming the image folder; nothing written."""
    ann_file, image_dir = _copy_coco(synthetic_coco, str(tmp_path))
    for name in os.listdir(image_dir):
        (tmp_path / "train2017" / name).write_bytes(b"garbage")
    out = str(tmp_path / "mr")
    with pytest.raises(RuntimeError, match="no readable image"):
        D.coco_to_mindrecord(ann_file, image_dir, out, workers=1)
    assert not os.path.exists(out)


def test_mindrecord_files_errors_and_numeric_order(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        D.mindrecord_files(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        D.mindrecord_files(str(tmp_path))
    for i in range(12):  # a legacy dataset without meta file
        (tmp_path / ("x.mind%d" % i)).write_bytes(b"")
        (tmp_path / ("x.mind%d.db" % i)).write_bytes(b"")
    names = [os.path.basename(f) for f in D.mindrecord_files(str(tmp_path), "x.mind")]
    assert names == ["x.mind%d" % i for i in range(12)]
    with pytest.raises(FileNotFoundError, match="coco_det"):
        D.mindrecord_files(str(tmp_path), "coco_det.train.mind")


def test_cli_and_shell_script(synthetic_coco, tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    out = str(tmp_path / "mr")
    cmd = [sys.executable, os.path.join(ROOT, "src", "dataset.py"), "--coco_data_dir", synthetic_coco.root,
           "--mindrecord_dir", out, "--mindrecord_shards=3", "--convert_workers=2"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    assert res.returncode == 0, res.stderr
    assert "converted 24 images" in res.stdout
    assert len(D.mindrecord_files(out)) == 3
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    assert again.returncode == 2 and out in again.stderr
    script = os.path.join(ROOT, "scripts", "convert_dataset_to_mindrecord.sh")
    usage = subprocess.run(["bash", script], capture_output=True, text=True, env=env, check=False)
    assert usage.returncode != 0 and "Usage" in usage.stdout + usage.stderr
    nodir = subprocess.run(["bash", script, str(tmp_path / "nothing"), out], capture_output=True, text=True,
                           env=env, check=False)
    assert nodir.returncode != 0 and "nothing" in nodir.stdout + nodir.stderr
    rel_coco = os.path.relpath(synthetic_coco.root, str(tmp_path))
    ok = subprocess.run(["bash", script, rel_coco, "mr2"], capture_output=True, text=True, cwd=str(tmp_path),
                        env=env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert D.read_meta(str(tmp_path / "mr2"))["num_images"] == 24


def test_default_prefix_is_the_configured_one(make_config):
    assert D.configured_prefix() == make_config().mindrecord_prefix
    assert D.configured_prefix("other.mind") == "other.mind"


_SLOW_CONVERSION = """
import sys, time
sys.path.insert(0, %r)
from src import dataset as D
read = D.read_and_check
def slow_read(*args):  # slows the workers' reading so that the test can kill the converter mid-run
    time.sleep(0.3)
    return read(*args)
D.read_and_check = slow_read
D.coco_to_mindrecord(%r, %r, %r, "p.mind", shards=1, workers=2)
"""


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid), encoding="utf-8") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _conversion_temporary(name):
    """The hidden folder of a conversion of prefix p.mind: .tmp-<pid>-p.mind-<random> (src.model_utils.file_io)."""
    return re.match(r"^\.tmp-\d+-p\.mind-", name) is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the worker processes")
def test_killed_converter_workers_end_quietly_and_the_next_run_removes_its_folder(synthetic_coco, tmp_path):
    """Fault: the converter killed mid-run (SIGKILL) | its workers end with it without a traceback; the next conversion of the prefix removes the hidden partial folder and reports it."""
    out = str(tmp_path / "mr")
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_CONVERSION % (ROOT, synthetic_coco.train_ann, synthetic_coco.train_images, out))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.isdir(out) and any(_conversion_temporary(n) for n in
                                                                       os.listdir(out)) and _children(proc.pid)):
        time.sleep(0.1)
    time.sleep(1.0)                                   # the workers are reading
    workers = _children(proc.pid)
    assert workers, "the converter started no worker"
    proc.kill()
    stderr = proc.communicate(timeout=30)[1]
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived the killed converter"
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    stale = [n for n in os.listdir(out) if _conversion_temporary(n)]
    assert len(stale) == 1
    summary = D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=1,
                                   workers=1)
    assert summary["stale_temporaries_removed"] == [os.path.join(out, stale[0])]
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")] and summary["num_images"] == 24
