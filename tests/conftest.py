"""Shared test set-up: MindSpore on CPU in graph mode."""
import mindspore as ms
import pytest


@pytest.fixture(scope="session", autouse=True)
def mindspore_cpu():
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
