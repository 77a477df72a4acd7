"""The shape of src/ (issue 20): the seed's modules at their paths, the rest in sub-packages, imports layered.

Units are the seed's modules (src/<name>.py) and the sub-packages (src/<package>/); every import of
the project by a module of src/ (at module level or inside a function) is an edge between units.
The unit graph has no cycle: a sub-package imports no seed module that imports it back. No file of
src/, tools/ or bench/ edits sys.path, and none of tools/ or bench/ imports tests/.
"""
import ast
import glob
import os
import re

from conftest import ROOT

SEED_MODULES = {"centernet_det", "dataset", "decode", "resnet101", "image", "post_process", "utils", "visual"}
PACKAGES = {"model_utils", "network", "data", "train", "infer", "deploy"}


def _unit(module):
    """'src.train.amp' -> 'train', 'src.utils' -> 'utils' (None outside src)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "src" and len(parts) > 1 else None


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            for alias in node.names:  # from src import image
                yield node.module + "." + alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def _unit_graph():
    graph = {}
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        unit = _unit(rel)
        if unit == "__init__":
            continue
        targets = {_unit(m) for m in _imports(path)} - {None, unit, "__init__"}
        graph.setdefault(unit, set()).update(t for t in targets if t in SEED_MODULES | PACKAGES)
    return graph


def test_the_seed_modules_stay_and_everything_else_is_in_a_sub_package():
    flat = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "src", "*.py"))} - {"__init__"}
    assert flat == SEED_MODULES
    found = {n for n in os.listdir(os.path.join(ROOT, "src"))
             if os.path.isfile(os.path.join(ROOT, "src", n, "__init__.py"))}
    assert found == PACKAGES


def test_imports_are_layered_without_cycles():
    graph = _unit_graph()
    state = {}

    def visit(unit, path):
        if state.get(unit) == "done":
            return
        assert state.get(unit) != "open", "import cycle: " + " -> ".join(path + [unit])
        state[unit] = "open"
        for target in sorted(graph.get(unit, ())):
            visit(target, path + [unit])
        state[unit] = "done"

    for unit in sorted(graph):
        visit(unit, [])
    assert not graph["model_utils"], "model_utils imports the project: %s" % graph["model_utils"]


def test_no_sys_path_edits_and_no_imports_of_tests():
    edits, reach = [], []
    for folder in ("src", "tools", "bench"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            text = open(path, encoding="utf-8").read()
            rel = os.path.relpath(path, ROOT)
            if re.search(r"sys\.path\.(insert|append)|sys\.path\s*[+=]", text):
                edits.append(rel)
            if folder != "src" and any(m == "tests" or m.startswith(("tests.", "conftest")) for m in _imports(path)):
                reach.append(rel)
    assert not edits, "sys.path edits in %s" % edits
    assert not reach, "tools/bench import tests/: %s" % reach
