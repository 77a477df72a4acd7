"""src/data/shard_check.py: the converter's checksum manifest and the check every MindRecord reader makes.

Damaged copies of the session's synthetic MindRecord are made in tmp_path (the fixture is
read-only). A damaged shard read unchecked can kill MindSpore's reader with a segmentation
fault, so the test of that case runs train.py in a subprocess.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

import train
from conftest import ROOT, SMALL_TRAIN, override_args
from src.data import shard_check
from src.data.mindrecord import META_SUFFIX, mindrecord_files, read_meta
from src.data.shard_check import ShardError, file_crc32, verify_dataset, verified_path

TINY = override_args(SMALL_TRAIN)


def _copy(mindrecord, dst):
    """A writable copy of the synthetic MindRecord folder; its path as a str."""
    shutil.copytree(mindrecord.mindrecord_dir, dst)
    return str(dst)


def _data_page(shard):
    """The offset of a shard's first data page: the header_size of its JSON header (after an 8-byte length)."""
    with open(shard, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(length))["header_size"]


def _flip(path, offset, count=64):
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def _one_error(caplog):
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "Traceback" not in caplog.text, caplog.text
    return errors[0]


def test_converter_records_size_and_checksum_of_every_file(synthetic_mindrecord):
    meta = read_meta(synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix)
    files = meta["manifest"]["files"]
    assert meta["manifest"]["algorithm"] == "crc32"
    assert sorted(files) == sorted(n + ext for n in meta["files"] for ext in ("", ".db"))
    for name, want in files.items():
        path = os.path.join(synthetic_mindrecord.mindrecord_dir, name)
        assert (os.path.getsize(path), file_crc32(path)) == (want["size"], want["crc32"])


def test_flipped_bytes_in_a_shard_name_the_shard_without_a_segfault(synthetic_mindrecord, tmp_path):
    """Fault: 64 bytes flipped at the start of a MindRecord shard's data page | exit 2 before training, one line naming the shard, its checksum and the re-conversion command (no segmentation fault)."""
    data = _copy(synthetic_mindrecord, tmp_path / "mr")
    shard = mindrecord_files(data, synthetic_mindrecord.prefix)[0]
    _flip(shard, _data_page(shard))
    args = TINY + ["--mindrecord_dir=%s" % data, "--train_steps=12", "--save_checkpoint_path=%s" % (tmp_path / "out")]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py")] + args, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "training steps" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and shard + " is corrupt" in errors[0] and "src/dataset.py --overwrite=true" in errors[0]


def test_truncated_shard_is_caught_by_its_size(synthetic_mindrecord, tmp_path, caplog):
    """Fault: a truncated MindRecord shard | exit 2 before training, one line naming the shard, its size and the size its conversion wrote, and the re-conversion command."""
    data = _copy(synthetic_mindrecord, tmp_path / "mr")
    shard = mindrecord_files(data, synthetic_mindrecord.prefix)[-1]
    size = os.path.getsize(shard)
    os.truncate(shard, _data_page(shard) + 1000)
    argv = TINY + ["--mindrecord_dir=%s" % data, "--train_steps=12", "--save_checkpoint_path=%s" % (tmp_path / "out")]
    assert train.main(argv) == 2
    message = _one_error(caplog)
    assert "%s has %d bytes but its conversion wrote %d" % (shard, _data_page(shard) + 1000, size) in message
    assert "re-convert" in message and "training steps" not in caplog.text


def test_checksums_are_computed_once_per_file_version(synthetic_mindrecord, tmp_path, monkeypatch):
    data = _copy(synthetic_mindrecord, tmp_path / "mr")
    prefix = synthetic_mindrecord.prefix
    meta = read_meta(data, prefix)
    meta_file = os.path.join(data, prefix + META_SUFFIX)
    count = len(meta["manifest"]["files"])
    assert verify_dataset(data, prefix, meta, meta_file) == count
    assert verify_dataset(data, prefix, meta, meta_file) == 0                    # this process remembers
    monkeypatch.setattr(shard_check, "_VERIFIED", {})
    assert verify_dataset(data, prefix, meta, meta_file) == 0                    # the record beside the shards
    shard = os.path.join(data, meta["files"][0])
    _flip(shard, _data_page(shard), 4)
    _flip(shard, _data_page(shard), 4)                                           # same bytes, a new mtime
    assert verify_dataset(data, prefix, meta, meta_file) == 1
    os.remove(verified_path(data, prefix))                                     # a read-only folder: checked,
    monkeypatch.setattr(shard_check, "_VERIFIED", {})                            # not recorded
    monkeypatch.setattr(shard_check, "write_json_atomic", _refuse_write)
    assert verify_dataset(data, prefix, meta, meta_file) == count
    assert not os.path.exists(verified_path(data, prefix))


def _refuse_write(path, obj, indent=None):
    raise PermissionError(13, "Permission denied", path)


def test_missing_manifest_warns_once_and_reads(synthetic_mindrecord, tmp_path, caplog):
    data = _copy(synthetic_mindrecord, tmp_path / "mr")
    meta_file = os.path.join(data, synthetic_mindrecord.prefix + META_SUFFIX)
    with open(meta_file, encoding="utf-8") as f:
        meta = json.load(f)
    del meta["manifest"]
    with open(meta_file, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    assert len(mindrecord_files(data, synthetic_mindrecord.prefix)) == 2
    assert len(mindrecord_files(data, synthetic_mindrecord.prefix)) == 2
    warnings = [r.getMessage() for r in caplog.records if "no checksum manifest" in r.getMessage()]
    assert len(warnings) == 1 and data in warnings[0]


def test_unreadable_header_without_manifest_is_one_line(synthetic_mindrecord, tmp_path, caplog):
    """Bad input: a MindRecord dataset without checksum manifest whose shard header is damaged | exit 2 before training, one line with MindSpore's cause naming the shard and the re-conversion command instead of its multi-line report."""
    data = _copy(synthetic_mindrecord, tmp_path / "mr")
    meta_file = os.path.join(data, synthetic_mindrecord.prefix + META_SUFFIX)
    os.remove(meta_file)
    shard = mindrecord_files(data, synthetic_mindrecord.prefix)[0]
    with open(shard, "r+b") as f:
        f.seek(20)
        f.write(b"XXXXXXXX")
    argv = TINY + ["--mindrecord_dir=%s" % data, "--train_steps=2", "--save_checkpoint_path=%s" % (tmp_path / "out")]
    assert train.main(argv) == 2
    message = _one_error(caplog)
    assert message.startswith("reading the MindRecord dataset in %s failed: " % data) and shard in message, message
    assert "re-convert" in message and "\n" not in message and "training steps" not in caplog.text


def test_missing_file_of_the_manifest_is_named(synthetic_mindrecord, tmp_path):
    data = _copy(synthetic_mindrecord, tmp_path / "mr")
    index = mindrecord_files(data, synthetic_mindrecord.prefix)[0] + ".db"
    os.remove(index)
    with pytest.raises(ShardError, match="%s, listed in .* is missing" % index):
        mindrecord_files(data, synthetic_mindrecord.prefix)


def test_undecodable_image_in_a_shard_is_one_line_naming_the_image(tmp_path, caplog):
    """Bad input: MindRecord rows (no manifest: written by another tool) whose image bytes do not decode | exit 2, one line naming the image_id, the dataset folder and the re-conversion command instead of MindSpore's pipeline report."""
    import numpy as np
    from mindspore.mindrecord import FileWriter
    from src.data.mindrecord import SCHEMA
    data = tmp_path / "other_tool"
    data.mkdir()
    writer = FileWriter(str(data / "coco_det.train.mind"), shard_num=1)
    writer.add_schema(SCHEMA, "rows of another tool")
    writer.write_raw_data([{"image": b"\x89PNG damaged", "image_id": 500 + i,
                            "bboxes": np.array([[1, 1, 20, 20]], np.float32),
                            "category_id": np.array([0], np.int32), "iscrowd": np.array([0], np.int32)}
                           for i in range(4)])
    writer.commit()
    argv = TINY + ["--mindrecord_dir=%s" % data, "--train_steps=2", "--do_shuffle=false",
                   "--save_checkpoint_path=%s" % (tmp_path / "out")]
    assert train.main(argv) == 2
    message = _one_error(caplog)
    assert message.startswith("reading the MindRecord dataset in %s failed: cannot decode the image of image_id 50"
                              % data), message
    assert "re-convert" in message and "\n" not in message and "no checksum manifest" in caplog.text
