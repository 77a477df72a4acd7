#!/bin/bash
# Set up the Python environment in .venv (created if absent), install the project into it editable
# (pyproject.toml: src, tools, bench, testkit importable from any folder) and build the compiled soft-NMS.
#   bash scripts/setup_env.sh          # runtime dependencies (requirements.txt)
#   bash scripts/setup_env.sh --test   # plus the test dependencies (requirements-test.txt)
# PYTHON selects the interpreter that creates the venv (default: python3).
set -euo pipefail
usage() { echo "usage: bash scripts/setup_env.sh [--test]" >&2; exit 2; }
with_tests=0
for arg in "$@"; do
    case "$arg" in
        --test) with_tests=1 ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $arg" >&2; usage ;;
    esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3}"
if ! command -v "$python_bin" >/dev/null 2>&1; then
    echo "error: $python_bin not found; install Python 3.9-3.11 or set PYTHON" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($python_bin --version 2>&1)"
    "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
if [ "$with_tests" = 1 ]; then
    .venv/bin/python -m pip install -q -r requirements-test.txt
fi
# The project itself, editable (this checkout's files are the installed ones): no dependency resolution
# (requirements.txt did it) and no build isolation (numpy and Cython are installed; no download).
.venv/bin/python -m pip install -q "setuptools>=70.1"  # builds editable wheels on its own (no wheel package)
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
if ! command -v "${CC:-gcc}" >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
    echo "warning: no C compiler found: the compiled soft-NMS is not built and the numpy version is used" >&2
    echo "         (same results, slower); install gcc and rerun this script to build it" >&2
else
    .venv/bin/python setup.py build_ext --inplace >/dev/null
    echo "compiled soft-NMS built"
fi
echo "environment ready: $(.venv/bin/python -c 'import mindspore; print("mindspore", mindspore.__version__)' 2>/dev/null)"
