#!/bin/bash
# Check a MindSpore C++ API folder against the facts of the real 2.7.0 API that the Ascend 310 app relies on:
#   bash tests/ascend310_stub/facts/check_api.sh <MINDSPORE_PATH> [--write]
# MINDSPORE_PATH holds include/api/*.h: tests/ascend310_stub (the test double) or the mindspore folder of
# the mindspore==2.7.0 wheel (unzip 'mindspore/include/*' from it). Compiles api_facts.cc, then the app
# (ascend310_infer/src/*.cc) with the flags of its CMakeLists.txt, and compares the MindSpore symbols the
# app imports with app_symbols.txt. Exit 0 when both agree, 1 with the difference, 2 on a usage error.
# --write (only with the real 2.7.0 headers, after the app starts using another API) rewrites app_symbols.txt.
set -e
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -f "$1/include/api/model.h" ] || { [ $# -eq 2 ] && [ "$2" != "--write" ]; }; then
    echo "usage: bash $0 <MINDSPORE_PATH holding include/api/model.h> [--write]" >&2
    exit 2
fi
ms_path="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
flags=(-std=c++17 -O2 -Wall -Werror -D_GLIBCXX_USE_CXX11_ABI=0 -I "$ms_path" -I "$ms_path/include")

g++ "${flags[@]}" -fsyntax-only "$here/api_facts.cc"
for source in "$root"/ascend310_infer/src/*.cc; do
    g++ "${flags[@]}" -I "$root/ascend310_infer" -c "$source" -o "$work/$(basename "$source" .cc).o"
done
# Undefined symbols of namespace mindspore (functions, vtables), demangled, one per line.
nm -C -u "$work"/*.o | sed -E 's/^ *U //' | grep -E '^((vtable|typeinfo|typeinfo name) for )?mindspore::' \
    | LC_ALL=C sort -u > "$work/imported.txt"
if [ "$2" = "--write" ]; then
    cp "$work/imported.txt" "$here/app_symbols.txt"
    echo "wrote $(wc -l < "$here/app_symbols.txt") symbols to $here/app_symbols.txt"
    exit 0
fi
if ! diff -u "$here/app_symbols.txt" "$work/imported.txt"; then
    echo "the app imports other MindSpore symbols from $ms_path than the 2.7.0 API exports (above: - expected, + found)" >&2
    exit 1
fi
echo "OK: $ms_path declares the 2.7.0 facts; the app imports the $(wc -l < "$work/imported.txt") expected MindSpore symbols"
