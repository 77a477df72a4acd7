"""scripts/ascend_distributed_launcher: commands generated from sample HCCL rank tables (checked, not
run on Ascend), their process watching (run with a stand-in for python) and bad input."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from testkit.ops_support import ROOT, env, read_text

LAUNCHER = os.path.join(ROOT, "scripts", "ascend_distributed_launcher")
sys.path.insert(0, LAUNCHER)
import get_distribute_train_cmd as gen  # noqa: E402

DATA = os.path.join(ROOT, "tests", "rank_tables")
RECIPE = os.path.join(ROOT, "coco_recipe_config.yaml")
TABLE_2P, TABLE_8P = os.path.join(DATA, "rank_table_2p.json"), os.path.join(DATA, "rank_table_8p.json")
TABLE_16P = os.path.join(DATA, "rank_table_16p_2servers.json")


def _generate(tmp_path, table, *extra, train_args=()):
    cmd_file = str(tmp_path / "cmd.sh")
    argv = ["--hccl_config_path=%s" % table, "--mindrecord_dir=/data/mr", "--output_dir=%s" % (tmp_path / "out"),
            "--cmd_file=%s" % cmd_file] + list(extra)
    if train_args:
        argv += ["--"] + list(train_args)
    return gen.main(argv), cmd_file


def _launches(cmd_file):
    """[(env dict, taskset cores or None, train.py argument list, log path)] of the generated script."""
    found = []
    for line in read_text(cmd_file).splitlines():
        if not line.startswith("(cd "):
            continue
        words = shlex.split(line[1:line.rindex(")")])
        run = words[words.index("exec") + 1:]
        assert run[0] == "env"
        envs = {}
        i = 1
        while "=" in run[i] and not run[i].startswith("--"):
            key, value = run[i].split("=", 1)
            envs[key] = value
            i += 1
        cores = None
        if run[i] == "taskset":
            assert run[i + 1] == "-c"
            cores, i = run[i + 2], i + 3
        args, log = run[i:], None
        if ">" in args:
            log = args[args.index(">") + 1]
            args = args[:args.index(">")]
        found.append((envs, cores, args, log))
    return found


@pytest.mark.parametrize("table, count", [(TABLE_2P, 2), (TABLE_8P, 8)])
def test_commands_for_sample_rank_tables(tmp_path, table, count):
    status, cmd_file = _generate(tmp_path, table, "--device_count=8", "--cpu_count=96",
                                 "--load_checkpoint_path=/ckpt/backbone.ckpt",
                                 train_args=["--epoch_size=2", "--train_config.batch_size=16"])
    assert status == 0
    text = read_text(cmd_file)
    assert "export RANK_TABLE_FILE=%s" % table in text and "export RANK_SIZE=%d" % count in text
    launches = _launches(cmd_file)
    assert len(launches) == count
    per = 96 // count
    for rank, (envs, cores, args, log) in enumerate(launches):
        assert envs == {"RANK_ID": str(rank), "DEVICE_ID": str(rank)}
        assert cores == "%d-%d" % (rank * per, rank * per + per - 1)
        assert args[0] == "python" and args[1] == os.path.join(ROOT, "train.py")
        options = args[2:]
        for expected in ("--distribute=true", "--device_target=Ascend", "--device_num=%d" % count,
                         "--mindrecord_dir=/data/mr", "--load_checkpoint_path=/ckpt/backbone.ckpt",
                         "--save_checkpoint_path=%s" % (tmp_path / "out" / ("LOG%d" % rank)),
                         "--config_path=%s" % RECIPE, "--save_checkpoint_steps=3000"):
            assert expected in options, expected
        # the recipe (epoch_size 330) comes first; arguments given after "--" come later and win
        assert options.index("--config_path=%s" % RECIPE) < options.index("--epoch_size=2")
        assert options[-1] == "--train_config.batch_size=16"
        assert log == str(tmp_path / "out" / ("LOG%d" % rank) / "training_log.txt")


def test_second_server_of_a_two_server_table(tmp_path):
    status, cmd_file = _generate(tmp_path, TABLE_16P, "--device_count=8", "--cpu_count=8",
                                 "--server_id=10.155.111.141")
    assert status == 0
    launches = _launches(cmd_file)
    assert [e["RANK_ID"] for e, _, _, _ in launches] == [str(r) for r in range(8, 16)]
    assert [e["DEVICE_ID"] for e, _, _, _ in launches] == [str(d) for d in range(8)]
    assert [c for _, c, _, _ in launches] == ["%d-%d" % (i, i) for i in range(8)]
    assert "export RANK_SIZE=16" in read_text(cmd_file)


def _table(tmp_path, doc):
    path = tmp_path / "table.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _two_devices(**change):
    doc = json.loads(read_text(TABLE_2P))
    doc.update(change)
    return doc


@pytest.mark.parametrize("make, extra, message", [
    (lambda p: str(p / "missing.json"), [], "rank table not found"),
    (lambda p: _table(p, "{\"server_list\": [}"), [], "is not valid JSON"),
    (lambda p: _table(p, {"version": "1.0"}), [], "neither 'server_list'"),
    (lambda p: _table(p, _two_devices(status="initializing")), [], "not 'completed'"),
    (lambda p: _table(p, {"server_list": [{"server_id": "a", "device": [{"device_id": "0"}]}]}), [],
     "lacks the field 'rank_id'"),
    (lambda p: _table(p, {"server_list": [{"server_id": "a", "device": [
        {"device_id": "0", "rank_id": "0"}, {"device_id": "1", "rank_id": "2"}]}]}), [], "rank ids must be 0..1"),
    (lambda p: _table(p, {"server_list": [{"server_id": "a", "device": [
        {"device_id": "1", "rank_id": "0"}, {"device_id": "1", "rank_id": "1"}]}]}), [], "device ids [1, 1]"),
    (lambda p: TABLE_8P, ["--device_count=4"], "names 8 devices on server 10.155.111.140"),
    (lambda p: TABLE_2P, ["--device_count=0"], "no Ascend device found"),
    (lambda p: TABLE_16P, ["--device_count=8"], "none matches this host's addresses"),
    (lambda p: TABLE_16P, ["--device_count=8", "--server_id=10.0.0.9"], "server 10.0.0.9 is not in"),
])
def test_bad_rank_tables_are_named(tmp_path, capsys, make, extra, message):
    status, cmd_file = _generate(tmp_path, make(tmp_path), *extra)
    assert status == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(cmd_file)


def test_bad_hyper_parameter_file(tmp_path, capsys):
    ini = tmp_path / "hp.ini"
    ini.write_text("[config]\nepoch_sise = 3\n")
    assert _generate(tmp_path, TABLE_2P, "--device_count=2", "--hyper_parameter_config_path=%s" % ini)[0] == 2
    assert "unknown option --epoch_sise; did you mean --epoch_size" in capsys.readouterr().err
    ini.write_text("[config]\ndistribute = false\n")
    assert _generate(tmp_path, TABLE_2P, "--device_count=2", "--hyper_parameter_config_path=%s" % ini)[0] == 2
    assert "sets distribute, which the launcher sets itself" in capsys.readouterr().err


FAKE_PYTHON = """#!/bin/bash
# Stand-in for python: records its environment and arguments; rank FAIL_RANK fails, the others run on.
echo "RANK_ID=$RANK_ID DEVICE_ID=$DEVICE_ID RANK_SIZE=$RANK_SIZE RANK_TABLE_FILE=$RANK_TABLE_FILE $*" \
    > "$RECORD_DIR/rank$RANK_ID.txt"
if [ "$RANK_ID" == "$FAIL_RANK" ]; then sleep 1; exit 3; fi
trap 'echo terminated > "$RECORD_DIR/term$RANK_ID.txt"; exit 143' TERM
for _ in $(seq 600); do sleep 0.1; done
"""


@pytest.mark.parametrize("fail_rank", ["none", "1"])
def test_generated_script_watches_its_processes(tmp_path, fail_rank):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON if fail_rank != "none" else FAKE_PYTHON.replace("for _ in $(seq 600)",
                                                                                "for _ in $(seq 3)"))
    fake.chmod(0o755)
    status, cmd_file = _generate(tmp_path, TABLE_2P, "--device_count=2", "--cpu_count=2", "--python=%s" % fake)
    assert status == 0
    record = tmp_path / "record"
    record.mkdir()
    result = subprocess.run(["bash", cmd_file], env=env({"RECORD_DIR": str(record), "FAIL_RANK": fail_rank}),
                            capture_output=True, text=True, timeout=120)
    for rank in (0, 1):
        line = read_text(record / ("rank%d.txt" % rank))
        assert line.startswith("RANK_ID=%d DEVICE_ID=%d RANK_SIZE=2 RANK_TABLE_FILE=%s " % (rank, rank, TABLE_2P))
    if fail_rank == "none":
        assert result.returncode == 0 and "all ranks finished" in result.stdout
    else:
        assert result.returncode == 1
        assert "rank 1 exited with status 3" in result.stderr and "stopping the other ranks" in result.stderr
        assert read_text(record / "term0.txt").strip() == "terminated"  # rank 0 was stopped, not left hanging
