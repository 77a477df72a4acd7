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


def test_folder_lock_is_exclusive_and_names_its_owner(tmp_path):
    import socket
    from src.model_utils.file_io import FolderInUseError, FolderLock
    with FolderLock(str(tmp_path / "out")) as first:
        assert first.held and first.owner() == (os.getpid(), socket.gethostname())
        with pytest.raises(FolderInUseError, match=r"out is in use by another run \(pid %d on host .+\): wait"
                           % os.getpid()) as caught:
            FolderLock(str(tmp_path / "out")).acquire("run", ": wait")
        assert caught.value.pid == os.getpid()
    assert not first.held
    FolderLock(str(tmp_path / "out")).acquire().release()  # released: free again


def test_folder_lock_dies_with_its_process(tmp_path):
    """Fault: the process owning an output folder is killed (SIGKILL) | its lock goes with it: the next run takes the folder, no stale lock to remove."""
    import subprocess
    import sys
    from src.model_utils.file_io import FolderLock
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = ("import sys, time\nfrom src.model_utils.file_io import FolderLock\n"
              "lock = FolderLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root, stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=root))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OSError, match="pid %d" % holder.pid):
            FolderLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    lock = FolderLock(str(tmp_path)).acquire()
    assert lock.owner()[0] == os.getpid()
    lock.release()
