"""src/deploy/runtimes.py: what the MINDIR runner says about a file that is not a MINDIR."""
import os

import numpy as np
import pytest

from tools import infer_mindir


def _onnx_model(path):
    """A valid one-node ONNX model (Identity on a (1, 3, 8, 8) float32 input)."""
    from onnx import TensorProto, helper, save
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    save(helper.make_model(graph), str(path))


def _tensorless_input(path):
    """A MindSpore-produced model protobuf whose graph input describes no tensor."""
    from mindspore.train.mind_ir_pb2 import ModelProto
    proto = ModelProto(producer_name="MindSpore")
    proto.graph.input.add(name="x")
    path.write_bytes(proto.SerializeToString())


@pytest.mark.parametrize("kind, reason", [
    ("onnx", "producer '', not MindSpore"),
    ("garbage", "not a MindSpore model protobuf"),
    ("empty", "producer '', not MindSpore"),
    ("tensorless", "graph input 'x' describes no tensor"),
])
def test_infer_mindir_given_no_mindir_names_the_file(tmp_path, capsys, kind, reason):
    """Bad input: tools/infer_mindir.py given an ONNX model, random bytes, an empty file or a model protobuf without input tensors | exit 2, one line "<file> is not a MINDIR (<why>)" pointing ONNX models to tools/infer_onnx.py; no output written."""
    model = tmp_path / ("model.onnx" if kind == "onnx" else "model.mindir")
    if kind == "onnx":
        _onnx_model(model)
    elif kind == "garbage":
        model.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        model.write_bytes(b"")
    else:
        _tensorless_input(model)
    inputs = tmp_path / "in"
    inputs.mkdir()
    np.zeros((1, 3, 8, 8), np.float32).tofile(inputs / "1.bin")
    args = ["--mindir_path", str(model), "--input_path", str(inputs), "--output_path", str(tmp_path / "out")]
    assert infer_mindir.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "%s is not a MINDIR (%s" % (model, reason) in errors[0], err
    assert "tools/infer_onnx.py" in errors[0]
    assert not os.path.exists(tmp_path / "out")
