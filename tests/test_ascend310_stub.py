"""The Ascend 310 test double (tests/ascend310_stub, NOT MindSpore) against facts of the real 2.7.0 C++ API.

`facts/check_api.sh` compiles `facts/api_facts.cc` (static checks of the types, enum values and call
shapes the app relies on) and the app itself, and compares the MindSpore symbols the app imports with
`facts/app_symbols.txt`, extracted by compiling the app against the headers of the mindspore==2.7.0
wheel. The same script run on those headers passes (see the double's README).
"""
import os
import shutil
import subprocess

import pytest

from conftest import require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(ROOT, "tests", "ascend310_stub")
CHECK = os.path.join(STUB, "facts", "check_api.sh")


@pytest.fixture(autouse=True)
def _compiler():
    """check_api.sh compiles with g++ and lists symbols with nm."""
    require_tool("g++", "compiles the Ascend 310 app and its API checks")
    require_tool("nm", "lists the MindSpore symbols the Ascend 310 app imports")


def _check(ms_path):
    return subprocess.run(["bash", CHECK, str(ms_path)], capture_output=True, text=True, timeout=300)


def test_the_double_declares_what_the_real_api_declares():
    proc = _check(STUB)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK: ")


@pytest.mark.parametrize("header, old, new, message", [
    # A status code value that differs from the real one: caught by the static facts.
    ("status.h", "kMEFailed = kME | 0x1,", "kMEFailed = 2,", "ME codes"),
    # A plain std::string method where the real API has an inline wrapper over std::vector<char>:
    # the app would then import a symbol the real library does not export.
    ("types.h", "  inline std::string Name() const;", "  std::string Name() const;", "MSTensor::Name() const"),
    # Model::Predict without its defaulted callbacks: still callable, but another exported signature.
    ("model.h", ",\n                 const MSKernelCallBack &before = nullptr, const MSKernelCallBack &after = nullptr);",
     ");", "Model::Predict"),
])
def test_the_check_rejects_a_double_that_departs_from_the_real_api(tmp_path, header, old, new, message):
    shutil.copytree(os.path.join(STUB, "include"), tmp_path / "include")
    path = tmp_path / "include" / "api" / header
    text = path.read_text()
    assert old in text
    text = text.replace(old, new)
    if header == "types.h":   # the out-of-line definition must go with the inline wrapper
        text = text.replace("std::string MSTensor::Name() const { return CharToString(CharName()); }\n", "")
    path.write_text(text)
    proc = _check(tmp_path)
    assert proc.returncode == 1
    assert message in proc.stdout + proc.stderr
