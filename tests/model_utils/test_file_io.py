"""src/model_utils/file_io.py: atomic file output."""
import json
import os
import re

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


def test_a_full_disk_names_the_file_the_space_it_needs_and_the_space_free(small_disk):
    """Fault: the disk fills up while a result, a drawing or an input .bin is written (a real 1 MB tmpfs) | DiskFullError 'no space left on the device to write <file>: it needs about 2.0 MB, 1.0 MB are free in <folder>; free some space or choose another --save_result_dir'; the earlier file kept, no temporary left."""
    import cv2
    import numpy as np

    from src.model_utils.file_io import DiskFullError, write_array_atomic
    from src.visual import save_image
    disk = small_disk("1m")
    old = disk / "results.json"
    old.write_text("[]")
    pattern = (r"^no space left on the device to write %s: it needs about %s, 10\d\d\.\d KB are free in %s; "
               r"free some space or choose another --save_result_dir$")
    with pytest.raises(DiskFullError, match=pattern % (re.escape(str(old)), r"2\.0 MB", re.escape(str(disk)))):
        write_json_atomic(str(old), "x" * (2 << 20), setting="--save_result_dir")
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), np.uint8)  # about 1.9 MB as a PNG
    drawing = disk / "visual" / "a_pred.png"
    with pytest.raises(DiskFullError, match=pattern % (re.escape(str(drawing)), r"1\.\d MB",
                                                       re.escape(str(disk / "visual")))):
        save_image(str(drawing), noise)
    with pytest.raises(DiskFullError, match=r"to write .*1\.bin: it needs about 2\.0 MB"):
        write_array_atomic(str(disk / "1.bin"), np.zeros(1 << 19, np.float32))
    assert old.read_text() == "[]" and sorted(os.listdir(disk)) == ["results.json", "visual"]
    assert os.listdir(disk / "visual") == [] and cv2.imencode(".png", noise)[0]


def test_an_impossible_output_folder_is_refused_before_any_work(tmp_path, small_disk):
    """Bad input: an output folder that is a file, lies under a file, or is on a read-only file system | OSError 'cannot write to <folder> (--save_result_dir): <file> is a file, not a folder' or '...: read-only file system; choose another --save_result_dir'; nothing created."""
    from src.model_utils.file_io import claim_output_folder, prepare_output_folder
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    for folder in (blocker, blocker / "sub" / "out"):
        with pytest.raises(OSError, match=r"^cannot write to %s \(--save_result_dir\): %s is a file, not a folder; "
                                          r"choose another --save_result_dir$"
                                          % (re.escape(str(folder)), re.escape(str(blocker)))):
            prepare_output_folder(str(folder), "--save_result_dir")
    read_only = small_disk("1m", read_only=True)
    for folder in (read_only, read_only / "out"):
        with pytest.raises(OSError, match=r"^cannot write to %s \(--pre_result_path\): read-only file system; "
                                          r"choose another --pre_result_path$" % re.escape(str(folder))):
            claim_output_folder(str(folder), "--pre_result_path", "preprocessing")
    assert blocker.read_text() == "a file" and os.listdir(read_only) == []
    with pytest.raises(OSError, match=r"not enough space in .* to start: it needs about 2\.0 MB, 1\.0 MB are free"):
        prepare_output_folder(str(small_disk("1m") / "out"), "--mindrecord_dir", need=2 << 20)
