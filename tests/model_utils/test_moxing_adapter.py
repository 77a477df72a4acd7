"""ModelArts adapter. ``moxing`` exists only on ModelArts: these tests use the test double in
fake_moxing/ (it copies between local folders; urls with a scheme are unreachable)."""
import os
import subprocess
import sys

import mindspore as ms
import pytest

import train
from src.centernet_det import CenterNetDet
from src.data.shard_check import VERIFIED_SUFFIX
from src.model_utils import moxing_adapter as ma
from src.model_utils.config import get_config
from src.model_utils.device_adapter import get_device_id, get_device_num, get_rank_id
from testkit.ops_support import PYTHON, ROOT, TINY, read_text, run

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_moxing")


@pytest.fixture(name="modelarts_env")
def modelarts_env_fixture(tmp_path, monkeypatch):
    """The fake moxing importable, one device of one server, markers and a copy log in tmp_path."""
    monkeypatch.syspath_prepend(FAKE)
    monkeypatch.delitem(sys.modules, "moxing", raising=False)
    values = {"DEVICE_ID": "0", "RANK_SIZE": "1", "RANK_ID": "0", "JOB_ID": "job-%s" % tmp_path.name,
              "CENTERNET_SYNC_DIR": str(tmp_path / "markers"), "FAKE_MOXING_LOG": str(tmp_path / "mox.log")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(ma, "_sync_count", 0)
    return values


def _copies(tmp_path):
    return [line for line in read_text(tmp_path / "mox.log").splitlines() if line.startswith("copy_parallel")]


def test_device_information_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEVICE_ID", "5")
    monkeypatch.setenv("RANK_SIZE", "16")
    monkeypatch.setenv("RANK_ID", "13")
    cfg = get_config(["--enable_modelarts=true"])
    assert (get_device_id(cfg), get_device_num(cfg), get_rank_id(cfg)) == (5, 16, 13)
    monkeypatch.setenv("RANK_SIZE", "many")
    with pytest.raises(ValueError, match="RANK_SIZE must be an integer, got 'many'"):
        get_device_num(cfg)


def test_local_path_rules():
    local = get_config([])
    assert ma.local_path(local, "rel/x.ckpt", "load_path") == "rel/x.ckpt"
    cfg = get_config(["--enable_modelarts=true", "--load_path=/cache/ckpt", "--output_path=/cache/out"])
    assert ma.local_path(cfg, "rel/x.ckpt", "load_path") == "/cache/ckpt/rel/x.ckpt"
    assert ma.local_path(cfg, "/abs/x.ckpt", "load_path") == "/abs/x.ckpt"
    assert ma.local_path(cfg, "", "output_path") == "/cache/out"
    assert ma.local_path(cfg, "", "load_path", keep_empty=True) == ""


def test_without_moxing_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "moxing", None)  # import moxing fails, as off ModelArts
    monkeypatch.setenv("CENTERNET_SYNC_DIR", str(tmp_path))
    with pytest.raises(ma.ModelArtsError, match="exists only on ModelArts"):
        ma.sync_data(str(tmp_path), str(tmp_path / "copy"))


WAITER = """
import sys
from src.model_utils import moxing_adapter as ma
try:
    ma.sync_data(sys.argv[1], sys.argv[2], timeout_s=float(sys.argv[3]))
except ma.ModelArtsError as err:
    print("ERROR", err)
    sys.exit(3)
print("DONE")
"""


def _waiter(tmp_path, env_values, src, dst, timeout_s=60):
    """A second local rank (DEVICE_ID 1 of 2) calling sync_data in its own process."""
    values = dict(os.environ)
    values.update(env_values)
    values.update(DEVICE_ID="1", RANK_SIZE="2", RANK_ID="1", PYTHONPATH=FAKE)
    return subprocess.Popen([PYTHON, "-c", WAITER, src, dst, str(timeout_s)], cwd=ROOT, env=values,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_one_copy_per_server_and_the_other_ranks_wait(tmp_path, modelarts_env, monkeypatch):
    src = tmp_path / "bucket"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("data")
    dst = tmp_path / "cache"
    waiter = _waiter(tmp_path, modelarts_env, str(src), str(dst))  # starts waiting before the copy exists
    monkeypatch.setenv("RANK_SIZE", "2")
    ma.sync_data(str(src), str(dst))  # device 0: the copier
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and "DONE" in out, out
    assert (dst / "sub" / "a.txt").read_text() == "data"
    assert len(_copies(tmp_path)) == 1  # the waiting rank did not copy


def test_a_failed_copy_reaches_every_rank(tmp_path, modelarts_env, monkeypatch):
    monkeypatch.setenv("RANK_SIZE", "2")
    with pytest.raises(ma.ModelArtsError, match="cannot reach obs://bucket/coco"):
        ma.sync_data("obs://bucket/coco", str(tmp_path / "cache"))
    waiter = _waiter(tmp_path, modelarts_env, "obs://bucket/coco", str(tmp_path / "cache"))
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 3
    assert "the copy of obs://bucket/coco (by this server's first device) failed: cannot reach obs://bucket/coco" \
        in out
    missing = tmp_path / "nowhere"
    monkeypatch.setattr(ma, "_sync_count", 5)
    with pytest.raises(ma.ModelArtsError, match="cannot reach %s: it does not exist" % missing):
        ma.sync_data(str(missing), str(tmp_path / "cache"))


def test_a_waiting_rank_gives_up_after_its_timeout(tmp_path, modelarts_env):
    waiter = _waiter(tmp_path, modelarts_env, str(tmp_path), str(tmp_path / "cache"), timeout_s=1)
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 3 and "waited 1 s for this server's first device to copy" in out


def test_wrapper_copies_in_and_out_and_takes_the_device_from_the_environment(tmp_path, modelarts_env, monkeypatch):
    (tmp_path / "bucket_data").mkdir()
    (tmp_path / "bucket_data" / "d.txt").write_text("d")
    (tmp_path / "bucket_ckpt").mkdir()
    (tmp_path / "bucket_ckpt" / "m.ckpt").write_text("c")
    monkeypatch.setenv("DEVICE_ID", "0")
    cfg = get_config(["--enable_modelarts=true", "--data_url=%s" % (tmp_path / "bucket_data"),
                      "--checkpoint_url=%s" % (tmp_path / "bucket_ckpt"), "--train_url=%s" % (tmp_path / "out_url"),
                      "--data_path=%s" % (tmp_path / "c" / "data"), "--load_path=%s" % (tmp_path / "c" / "ckpt"),
                      "--output_path=%s" % (tmp_path / "c" / "out"), "--device_id=7"])
    seen = {}

    def job():
        seen["data"] = (tmp_path / "c" / "data" / "d.txt").read_text()
        seen["ckpt"] = (tmp_path / "c" / "ckpt" / "m.ckpt").read_text()
        (tmp_path / "c" / "out" / "result.txt").write_text("r")
        raise RuntimeError("the job failed")

    with pytest.raises(RuntimeError, match="the job failed"):
        ma.moxing_wrapper(cfg)(job)()
    assert seen == {"data": "d", "ckpt": "c"} and cfg.device_id == 0 and cfg.device_num == 1
    assert (tmp_path / "out_url" / "result.txt").read_text() == "r"  # outputs are copied even after a failure
    assert len(_copies(tmp_path)) == 3


def test_train_with_an_unreachable_data_url_stops_before_training(tmp_path, modelarts_env, caplog):
    out = tmp_path / "cache_out"
    argv = TINY + ["--enable_modelarts=true", "--data_url=obs://bucket/coco_mindrecord",
                   "--data_path=%s" % (tmp_path / "cache_data"), "--output_path=%s" % out]
    assert train.main(argv) == 2
    assert "cannot reach obs://bucket/coco_mindrecord" in caplog.text
    assert not out.exists() and not (tmp_path / "cache_data").exists()


def test_train_on_modelarts_with_profiler(synthetic_mindrecord, tmp_path, modelarts_env):
    """train.py end to end: data and a pretrained checkpoint copied in, checkpoints, logs and the
    profiler's output (MindSpore's profiler on CPU) copied out to train_url."""
    cfg = get_config(TINY)
    pretrained = tmp_path / "bucket_ckpt"
    pretrained.mkdir()
    ms.save_checkpoint(CenterNetDet(cfg.net_config, 5), str(pretrained / "pretrained.ckpt"))
    cache, train_url = tmp_path / "cache", tmp_path / "bucket_out"
    argv = TINY + ["--enable_modelarts=true", "--data_url=%s" % synthetic_mindrecord.mindrecord_dir,
                   "--checkpoint_url=%s" % pretrained, "--train_url=%s" % train_url,
                   "--data_path=%s" % (cache / "data"), "--load_path=%s" % (cache / "ckpt"),
                   "--output_path=%s" % (cache / "train"), "--load_checkpoint_path=pretrained.ckpt",
                   "--train_steps=4", "--need_profiler=true", "--profiler_steps=2"]
    result = run([PYTHON, os.path.join(ROOT, "train.py")] + argv, 400, extra_env=dict(modelarts_env, PYTHONPATH=FAKE))
    assert result.returncode == 0, result.stderr[-4000:]
    count = len(ms.load_checkpoint(str(pretrained / "pretrained.ckpt")))
    assert "loaded %d of %d network parameters from %s" % (count, count, cache / "ckpt" / "pretrained.ckpt") \
        in result.stderr
    copied = {n for n in os.listdir(cache / "data") if not n.endswith(VERIFIED_SUFFIX)}  # the record of the
    assert copied == {n for n in os.listdir(synthetic_mindrecord.mindrecord_dir)            # check made after the copy
                      if not n.endswith(VERIFIED_SUFFIX)}
    assert (train_url / "ckpt_0" / "checkpoint_centernet-1_4.ckpt").is_file()
    assert (train_url / "ckpt_0" / "training_log.csv").is_file()
    traces = list((train_url / "profiler").glob("rank0_*/ASCEND_PROFILER_OUTPUT/trace_view.json"))
    ops = list((train_url / "profiler").glob("rank0_*/FRAMEWORK/cpu_op_type_info_0.csv"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    assert len(ops) == 1 and "Conv2D" in ops[0].read_text()
    assert "profiler output written to %s" % (cache / "train" / "profiler") in result.stderr


def test_dataset_conversion_on_modelarts(synthetic_coco, tmp_path, modelarts_env):
    """src/dataset.py as a ModelArts startup file: the COCO folder copied in from data_url, the
    MindRecord files written below output_path and copied out to train_url. The code folder is on
    PYTHONPATH (the job's environment) as the editable install puts it on a user's."""
    cache, train_url = tmp_path / "cache", tmp_path / "bucket_out"
    argv = ["--enable_modelarts=true", "--data_url=%s" % synthetic_coco.root, "--train_url=%s" % train_url,
            "--data_path=%s" % (cache / "data"), "--output_path=%s" % (cache / "out"),
            "--mindrecord_dir=mindrecord", "--mindrecord_shards=2", "--convert_workers=1"]
    result = run([PYTHON, os.path.join(ROOT, "src", "dataset.py")] + argv, 300,
                 extra_env=dict(modelarts_env, PYTHONPATH=os.pathsep.join([FAKE, ROOT])))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "converted %d images" % synthetic_coco.num_train in result.stdout
    written = sorted(os.listdir(train_url / "mindrecord"))
    assert "coco_det.train.mind0" in written and "coco_det.train.mind1" in written
    assert sorted(os.listdir(cache / "out" / "mindrecord")) == written
