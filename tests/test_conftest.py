"""conftest's missing-prerequisite helpers: a skip locally, a failure under CI=true (CI installs them)."""
import json

import pytest

from conftest import missing, require_module, require_tool


def test_missing_prerequisites_skip_locally(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no frobnicator"):
        missing("no frobnicator")
    with pytest.raises(pytest.skip.Exception, match="no 'centernet-no-such-tool' command on PATH: draws"):
        require_tool("centernet-no-such-tool", "draws")
    with pytest.raises(pytest.skip.Exception, match="cannot import centernet_no_such_module .*: draws"):
        require_module("centernet_no_such_module", "draws")


@pytest.mark.parametrize("value", ["true", "TRUE"])
def test_missing_prerequisites_fail_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"no frobnicator \(CI=true: CI provides this"):
        missing("no frobnicator")
    with pytest.raises(pytest.fail.Exception, match="no 'centernet-no-such-tool' command"):
        require_tool("centernet-no-such-tool", "draws")
    with pytest.raises(pytest.fail.Exception, match="cannot import centernet_no_such_module"):
        require_module("centernet_no_such_module", "draws")


def test_present_prerequisites_are_returned(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_module("json", "parses") is json
    assert require_tool("sh", "runs scripts").endswith("/sh")
