"""Run an exported MINDIR on CPU or GPU over preprocess.py's inputs: the Python twin of ascend310_infer.

    python tools/infer_mindir.py --mindir_path=centernet.mindir --input_path=./preprocess_Result/images \
        --output_path=./result_Files [--device_target=CPU] [--device_id=0]

Same interface and files as the Ascend 310 app (ascend310_infer/out/main), so
scripts/run_infer_310.sh can use either (INFER_APP): every <input_path>/<name>.bin (float32,
the model's input shape) gives <output_path>/<name>_<i>.bin for each model output i (here one:
the (1, K, 6) float32 detections). A .bin of the wrong size is an error naming it.
"""
import argparse
import glob
import logging
import os
import sys

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src.infer_chain import infer_bin_folder  # noqa: E402
from src.model_utils.device_adapter import set_device  # noqa: E402
from src.model_utils.entry import guarded, setup_logging  # noqa: E402

logger = logging.getLogger("infer_mindir")

_DTYPES = {1: np.float32}  # mind_ir TensorProto.DataType FLOAT (the only input type our export produces)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mindir_path", required=True, help="exported model (export.py)")
    parser.add_argument("--input_path", required=True, help="folder of input .bin files (preprocess.py images/)")
    parser.add_argument("--output_path", default="./result_Files", help="folder receiving <name>_<i>.bin")
    parser.add_argument("--device_target", default="CPU", choices=["CPU", "GPU"])
    parser.add_argument("--device_id", type=int, default=0)
    return parser.parse_args(argv)


def model_inputs(path):
    """[(name, shape, numpy dtype)] of the MINDIR's graph inputs, read from the model file (a protobuf)."""
    from mindspore.train.mind_ir_pb2 import ModelProto
    proto = ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    found = []
    for item in proto.graph.input:
        tensor = item.tensor[0]
        dtype = _DTYPES.get(tensor.data_type)
        if dtype is None:
            raise ValueError("%s: input %s has data type %d, only float32 is supported"
                             % (path, item.name, tensor.data_type))
        found.append((item.name, tuple(int(d) for d in tensor.dims), dtype))
    return found


def run(args):
    import mindspore as ms
    from mindspore import Tensor, nn
    if not os.path.isfile(args.mindir_path):
        raise FileNotFoundError("MINDIR not found: %s" % args.mindir_path)
    if not os.path.isdir(args.input_path):
        raise FileNotFoundError("input folder not found: %s" % args.input_path)
    files = sorted(glob.glob(os.path.join(args.input_path, "*.bin")))
    if not files:
        raise FileNotFoundError("no .bin input files in %s" % args.input_path)
    set_device(args, args.device_target, args.device_id)
    inputs = model_inputs(args.mindir_path)
    if len(inputs) != 1:
        raise ValueError("%s has %d inputs; this runner feeds one" % (args.mindir_path, len(inputs)))
    _, shape, dtype = inputs[0]
    net = nn.GraphCell(ms.load(args.mindir_path))

    def predict(data):
        outputs = net(Tensor(data))
        return [o.asnumpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]

    total = infer_bin_folder(files, shape, dtype, predict, args.output_path)
    logger.info("%d inputs inferred in %.1f s (%.2f ms per input, first one includes compilation) -> %s",
                len(files), total, 1000 * total / len(files), args.output_path)
    return len(files)


def main(argv=None):
    """Exit codes as the configuration-driven entry scripts: 2 with a one-line error (argparse's too)."""
    setup_logging()
    args = parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
