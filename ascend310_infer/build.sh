#!/bin/bash
# Build the Ascend 310 inference app into ascend310_infer/out/main (BUILD_DIR overrides the folder).
# MINDSPORE_PATH: the MindSpore package folder with include/api and lib/libmindspore.so; by default
# the installed mindspore-ascend (or mindspore) package found by pip.
set -e
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="${BUILD_DIR:-$here/out}"
python_bin="${PYTHON:-python3}"
if [ -z "$MINDSPORE_PATH" ]; then
    for package in mindspore-ascend mindspore; do
        location="$($python_bin -m pip show "$package" 2>/dev/null | awk '/^Location:/ {print $2}')"
        if [ -n "$location" ] && [ -d "$location/mindspore" ]; then
            MINDSPORE_PATH="$(realpath "$location/mindspore")"
            break
        fi
    done
fi
if [ -z "$MINDSPORE_PATH" ] || [ ! -f "$MINDSPORE_PATH/include/api/model.h" ]; then
    echo "error: no MindSpore C++ API found (MINDSPORE_PATH='$MINDSPORE_PATH' lacks include/api/model.h);" >&2
    echo "       install the MindSpore Ascend package or set MINDSPORE_PATH" >&2
    exit 1
fi
rm -rf "$build_dir"
mkdir -p "$build_dir"
cd "$build_dir"
cmake "$here" -DMINDSPORE_PATH="$MINDSPORE_PATH"
make -j"$(nproc 2>/dev/null || echo 2)"
echo "built $build_dir/main"
