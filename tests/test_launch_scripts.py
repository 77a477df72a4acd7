"""scripts/*.sh: argument checks, usage on error, relative paths, exit status, background runs,
finding the Python environment, the multi-host settings of the msrun launchers.

The Ascend and GPU scripts are run up to the point where this CPU-only machine stops them
(checks, then a job that fails at start because the backend is missing, which the script
must report as a failure)."""
import os
import re
import shutil
import socket

import pytest

from testkit.ops_support import PYTHON, ROOT, TINY, read_text, run, wait_for

SCRIPTS = os.path.join(ROOT, "scripts")
TRAIN_SCRIPTS = ["run_standalone_train_ascend.sh", "run_standalone_train_gpu.sh", "run_standalone_train_cpu.sh",
                 "run_distributed_train_ascend.sh", "run_distributed_train_ascend_msrun.sh",
                 "run_distributed_train_gpu.sh", "run_distributed_train_cpu.sh"]
EVAL_SCRIPTS = ["run_standalone_eval_ascend.sh", "run_standalone_eval_gpu.sh", "run_standalone_eval_cpu.sh"]
OTHER_SCRIPTS = ["convert_dataset_to_mindrecord.sh", "run_infer_310.sh"]


def _script(name, *args, cwd=ROOT, extra_env=None, path_first=None, timeout=120):
    kwargs = {} if path_first is None else {"path_first": path_first}
    return run(["bash", os.path.join(SCRIPTS, name)] + [str(a) for a in args], timeout, cwd=cwd,
               extra_env=extra_env, **kwargs)


@pytest.mark.parametrize("name", TRAIN_SCRIPTS + EVAL_SCRIPTS + OTHER_SCRIPTS)
def test_no_argument_prints_usage_and_fails(name):
    result = _script(name)
    assert result.returncode == 2
    assert "error: expected" in result.stderr and "Usage: bash scripts/%s" % name in result.stderr


@pytest.mark.parametrize("name, args, message", [
    ("run_standalone_train_ascend.sh", ["x", "{data}"], "DEVICE_ID must be an integer, got 'x'"),
    ("run_standalone_train_ascend.sh", ["0", "{data}", "a.ckpt", "extra"], "expected 2 to 3 arguments, got 4"),
    ("run_standalone_train_cpu.sh", ["{tmp}/missing"], "MINDRECORD_DATASET_PATH is not a folder"),
    ("run_standalone_train_cpu.sh", ["{tmp}"], "holds no MindRecord files"),
    ("run_standalone_train_gpu.sh", ["0", "{data}", "{tmp}/missing.ckpt"], "LOAD_CHECKPOINT_PATH is not a file"),
    ("run_distributed_train_cpu.sh", ["{data}", "two"], "WORKER_NUM must be an integer, got 'two'"),
    ("run_distributed_train_cpu.sh", ["{data}", "0"], "WORKER_NUM must be at least 1, got 0"),
    ("run_distributed_train_gpu.sh", ["{data}", "-1"], "DEVICE_NUM must be an integer"),
    ("run_distributed_train_ascend.sh", ["{data}", "{tmp}/hccl.json"], "RANK_TABLE_FILE is not a file"),
    ("run_standalone_eval_cpu.sh", ["train", "{tmp}", "{tmp}/m.ckpt"], "RUN_MODE must be val or test, got 'train'"),
    ("run_standalone_eval_ascend.sh", ["0", "val", "{tmp}/coco", "{tmp}/m.ckpt"], "DATA_DIR is not a folder"),
    ("run_standalone_eval_gpu.sh", ["0", "test", "{tmp}", "{tmp}/m.ckpt"], "LOAD_CHECKPOINT_PATH is not a file"),
])
def test_bad_arguments_are_named(synthetic_mindrecord, tmp_path, name, args, message):
    """Bad input: launcher arguments of the wrong count or kind (DEVICE_ID not an integer, WORKER_NUM 0, a missing folder or checkpoint, RUN_MODE train) | exit 2 naming the argument and the value, with the usage."""
    values = {"data": synthetic_mindrecord.mindrecord_dir, "tmp": str(tmp_path)}
    result = _script(name, *[a.format(**values) for a in args])
    assert result.returncode == 2
    assert message in result.stderr and "Usage:" in result.stderr


def test_relative_paths_are_resolved_from_the_calling_folder(synthetic_mindrecord, tmp_path):
    """A relative dataset path is found from the caller's folder (the job itself fails fast: no Ascend)."""
    parent = os.path.dirname(synthetic_mindrecord.mindrecord_dir)
    name = os.path.basename(synthetic_mindrecord.mindrecord_dir)
    result = _script("run_standalone_train_ascend.sh", "0", name, cwd=parent,
                     extra_env={"OUTPUT_DIR": str(tmp_path / "out"), "STARTUP_CHECK_S": "120"})
    log = read_text(tmp_path / "out" / "LOG0" / "training_log.txt")
    assert "--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir in log
    # Background run (the default on Ascend): the failure at start is detected and reported.
    assert result.returncode == 1
    assert "the job stopped at start with exit status 2" in result.stderr
    assert "--device_target=Ascend cannot be used" in result.stderr
    assert (tmp_path / "out" / "LOG0" / "exit_status").read_text().strip() == "2"


def test_rank_table_script_refuses_a_host_without_the_devices(synthetic_mindrecord, tmp_path):
    """Bad input: a rank table whose devices this host does not have | the Ascend launcher stops saying no Ascend device was found and the launch commands could not be generated."""
    table = os.path.join(ROOT, "tests", "rank_tables", "rank_table_8p.json")
    result = _script("run_distributed_train_ascend.sh", synthetic_mindrecord.mindrecord_dir, table,
                     extra_env={"OUTPUT_DIR": str(tmp_path / "out")})
    assert result.returncode == 2
    assert "no Ascend device found on this host" in result.stderr
    assert "could not generate the launch commands" in result.stderr


def test_rank_table_script_passes_the_server_id(synthetic_mindrecord, tmp_path):
    """SERVER_ID picks this host's server of a multi-server table (here one the table lacks)."""
    table = os.path.join(ROOT, "tests", "rank_tables", "rank_table_16p_2servers.json")
    result = _script("run_distributed_train_ascend.sh", synthetic_mindrecord.mindrecord_dir, table,
                     extra_env={"OUTPUT_DIR": str(tmp_path / "out"), "SERVER_ID": "10.9.9.9", "DEVICE_COUNT": "8"})
    assert result.returncode == 2
    assert "server 10.9.9.9 is not in rank table" in result.stderr


def test_rank_table_script_reports_failed_ranks(synthetic_mindrecord, tmp_path):
    """With DEVICE_COUNT faking 2 devices the ranks start, fail (no Ascend here) and the job fails."""
    table = os.path.join(ROOT, "tests", "rank_tables", "rank_table_2p.json")
    result = _script("run_distributed_train_ascend.sh", synthetic_mindrecord.mindrecord_dir, table,
                     extra_env={"OUTPUT_DIR": str(tmp_path / "out"), "DEVICE_COUNT": "2", "FOREGROUND": "1"},
                     timeout=300)
    assert result.returncode == 1
    # The launcher names the first rank(s) to fail and stops the others (under load a rank can be
    # stopped before it reaches its own error), so every rank it names must hold the error.
    failed = [int(r) for r in re.findall(r"rank (\d+) exited with status 2", result.stderr + result.stdout)]
    assert failed and set(failed) <= {0, 1}
    for rank in failed:
        assert "--device_target=Ascend cannot be used" in read_text(
            tmp_path / "out" / ("LOG%d" % rank) / "training_log.txt")


def test_msrun_absent_is_named(synthetic_mindrecord, tmp_path):
    """Bad input: a MindSpore installation without msrun on PATH | the msrun launcher stops naming msrun."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # an environment with python (and MindSpore) but without msrun
    python.write_text('#!/bin/sh\nexec "%s" "$@"\n' % PYTHON)
    python.chmod(0o755)
    result = _script("run_distributed_train_cpu.sh", synthetic_mindrecord.mindrecord_dir, "2",
                     path_first=str(bin_dir), extra_env={"PATH": "/usr/bin:/bin", "PYTHON": str(python)})
    assert result.returncode == 2
    assert "msrun not found in %s nor on PATH" % bin_dir in result.stderr


@pytest.mark.parametrize("env_values, message", [
    ({"LOCAL_WORKER_NUM": "3"}, "LOCAL_WORKER_NUM=3 does not divide the total WORKER_NUM=4"),
    ({"LOCAL_WORKER_NUM": "0"}, "LOCAL_WORKER_NUM must be at least 1, got 0"),
    ({"LOCAL_WORKER_NUM": "2", "NODE_RANK": "2"}, "NODE_RANK=2 but the job has 2 host(s)"),
    ({"NODE_RANK": "x"}, "NODE_RANK must be an integer, got 'x'"),
    ({"LOCAL_WORKER_NUM": "2", "NODE_RANK": "1", "MASTER_ADDR": "no-such-host.invalid"},
     "MASTER_ADDR 'no-such-host.invalid' does not resolve"),
    ({"MASTER_PORT": "80"}, "MASTER_PORT must be at least 1024, got 80"),
])
def test_bad_multihost_settings_are_named(synthetic_mindrecord, tmp_path, env_values, message):
    """Bad input: LOCAL_WORKER_NUM not dividing WORKER_NUM, NODE_RANK beyond the hosts, an unresolvable MASTER_ADDR, a privileged MASTER_PORT | exit 2 with one line naming the variable and its value; nothing written."""
    values = dict(env_values, OUTPUT_DIR=str(tmp_path / "out"))
    result = _script("run_distributed_train_cpu.sh", synthetic_mindrecord.mindrecord_dir, "4", extra_env=values)
    assert result.returncode == 2
    assert message in result.stderr and "Usage:" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_launchers_find_the_project_environment(synthetic_coco, tmp_path):
    """Bad input: a shell whose PATH lacks the project's environment | the launcher finds the project's .venv by itself and runs."""
    result = _script("convert_dataset_to_mindrecord.sh", synthetic_coco.root, tmp_path / "mr", path_first="/usr/bin",
                     extra_env={"PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "converted 24 images" in result.stdout


def _scripts_without_environment(tmp_path):
    """A copy of the project's scripts folder in a project without .venv."""
    shutil.copytree(SCRIPTS, tmp_path / "project" / "scripts")
    return str(tmp_path / "project" / "scripts")


@pytest.mark.parametrize("name, args", [
    ("convert_dataset_to_mindrecord.sh", ["{coco}", "{tmp}/mr"]),
    ("run_standalone_train_cpu.sh", ["{data}"]),
    ("run_distributed_train_cpu.sh", ["{data}", "2"]),
    ("run_standalone_eval_cpu.sh", ["val", "{coco}", "{ckpt}"]),
])
def test_no_environment_is_one_clear_line(synthetic_mindrecord, tmp_path, name, args):
    """Bad input: a launcher run in a project without .venv and no PYTHON set | exit 2 with one line saying to run scripts/setup_env.sh or set PYTHON; nothing written."""
    scripts = _scripts_without_environment(tmp_path)
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    values = {"coco": synthetic_mindrecord.root, "data": synthetic_mindrecord.mindrecord_dir, "tmp": str(tmp_path),
              "ckpt": str(ckpt)}
    result = run(["bash", os.path.join(scripts, name)] + [a.format(**values) for a in args], 60, cwd=str(tmp_path),
                 extra_env={"PATH": "/usr/bin:/bin", "OUTPUT_DIR": str(tmp_path / "out")}, path_first="/usr/bin")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no Python environment with MindSpore found (%s/.venv is absent); run: bash %s/setup_env.sh "
        "(creates .venv), or set PYTHON to an interpreter with MindSpore" % (os.path.dirname(scripts), scripts)]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "mr").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("python, message", [
    ("/nonexistent/python", "PYTHON=/nonexistent/python is not an executable"),
    ("/usr/bin/env", "/usr/bin/env cannot import mindspore"),
])
def test_a_bad_python_is_one_clear_line(synthetic_coco, tmp_path, python, message):
    """Bad input: PYTHON naming a missing file or an interpreter without MindSpore | exit 2 with one line naming it and scripts/setup_env.sh."""
    result = _script("convert_dataset_to_mindrecord.sh", synthetic_coco.root, tmp_path / "mr",
                     extra_env={"PYTHON": python})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "scripts/setup_env.sh" in lines[0]


def test_busy_master_port_is_named(synthetic_mindrecord):
    """Bad input: a MASTER_PORT already in use | the launcher names the port before starting workers."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _script("run_distributed_train_cpu.sh", synthetic_mindrecord.mindrecord_dir, "2",
                         extra_env={"MASTER_PORT": str(port)})
    assert result.returncode == 2
    assert "MASTER_PORT %d is in use" % port in result.stderr


def test_cpu_standalone_script_in_the_background(synthetic_mindrecord, tmp_path):
    out = tmp_path / "out"
    result = _script("run_standalone_train_cpu.sh", synthetic_mindrecord.mindrecord_dir, *TINY, "--train_steps=2",
                     extra_env={"OUTPUT_DIR": str(out), "FOREGROUND": "0", "STARTUP_CHECK_S": "1"})
    assert result.returncode == 0, result.stderr
    assert "started in the background" in result.stdout or "finished within" in result.stdout
    status = out / "LOG0" / "exit_status"
    assert wait_for(status.exists, 300), read_text(out / "LOG0" / "training_log.txt")[-3000:]
    assert status.read_text().strip() == "0"
    assert (out / "LOG0" / "ckpt_0" / "checkpoint_centernet-1_2.ckpt").is_file()
    assert "training finished" in read_text(out / "LOG0" / "training_log.txt")


def test_cpu_standalone_script_returns_the_job_status(synthetic_mindrecord, tmp_path):
    result = _script("run_standalone_train_cpu.sh", synthetic_mindrecord.mindrecord_dir, *TINY,
                     "--train_config.batch_size=64", extra_env={"OUTPUT_DIR": str(tmp_path / "out")})
    assert result.returncode == 2
    assert "too few for one global batch" in result.stderr  # the end of the log is shown


@pytest.mark.parametrize("name", ["run_standalone_train_gpu.sh", "run_standalone_train_ascend.sh"])
def test_accelerator_launchers_train_with_the_recipe_before_user_options(synthetic_mindrecord, tmp_path, name):
    fake = tmp_path / "fake_python"
    fake.write_text('#!/bin/bash\necho "$*" > "%s"\n' % (tmp_path / "args.txt"))
    fake.chmod(0o755)
    result = _script(name, "0", synthetic_mindrecord.mindrecord_dir, "--epoch_size=2",
                     extra_env={"PYTHON": str(fake), "FOREGROUND": "1", "OUTPUT_DIR": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args.txt").read_text().split()
    recipe = "--config_path=%s" % os.path.join(ROOT, "coco_recipe_config.yaml")
    assert recipe in args and args.index(recipe) < args.index("--epoch_size=2")
