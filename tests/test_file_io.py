"""src/file_io.py: atomic file output."""
import json
import os

import pytest

from src.file_io import write_json_atomic


def test_atomic_json_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(str(path), [1, 2])
    with pytest.raises(TypeError):
        write_json_atomic(str(path), [object()])
    assert json.loads(path.read_text()) == [1, 2] and os.listdir(tmp_path) == ["results.json"]
