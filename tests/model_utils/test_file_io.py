"""src/model_utils/file_io.py: atomic file output."""
import json
import os

import pytest

from src.model_utils.file_io import write_json_atomic


def test_atomic_json_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(str(path), [1, 2])
    with pytest.raises(TypeError):
        write_json_atomic(str(path), [object()])
    assert json.loads(path.read_text()) == [1, 2] and os.listdir(tmp_path) == ["results.json"]


def test_publish_folder_moves_everything_with_the_marker_last(tmp_path, monkeypatch):
    from src.model_utils import file_io
    staging, out = tmp_path / "out" / ".staging", tmp_path / "out"
    staging.mkdir(parents=True)
    for name in ("a.meta", "a0", "a0.db", "a1"):
        (staging / name).write_text(name)
    moved = []
    real = os.replace
    monkeypatch.setattr(file_io.os, "replace", lambda src, dst: (moved.append(os.path.basename(dst)), real(src, dst)))
    file_io.publish_folder(str(staging), str(out), last="a.meta")
    assert moved[-1] == "a.meta" and sorted(moved) == ["a.meta", "a0", "a0.db", "a1"]
    assert (out / "a0.db").read_text() == "a0.db" and os.listdir(staging) == []
    with pytest.raises(OSError, match="b.meta is missing"):
        file_io.publish_folder(str(staging), str(out), last="b.meta")
