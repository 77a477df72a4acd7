"""tools/robustness_table.py: docs/ROBUSTNESS.md is the table of the marked tests, row for row."""
import os

from tools import robustness_table as R


def test_the_table_matches_the_tests():
    rows = R.collect()
    assert len(rows) >= 9
    for _, _, _, test in rows:
        path, name = test.split("::")
        assert os.path.isfile(os.path.join(R.ROOT, path)) and name.startswith("test")
    assert R.main(["--check"]) == 0, "docs/ROBUSTNESS.md is out of date: run python tools/robustness_table.py"


def test_a_changed_docstring_makes_the_check_fail(tmp_path, monkeypatch):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        'def test_a():\n    """Bad input: a thing | an error"""\n\ndef test_b():\n    """Plain test."""\n')
    rows = R.collect(str(tmp_path))
    assert rows == [("Bad input", "a thing", "an error", "tests/test_x.py::test_a")]
    table = tmp_path / "ROBUSTNESS.md"
    table.write_text(R.render(rows))
    monkeypatch.setattr(R, "TABLE_PATH", str(table))
    monkeypatch.setattr(R, "collect", lambda: [("Bad input", "a thing", "another error", "tests/test_x.py::test_a")])
    assert R.main(["--check"]) == 1
