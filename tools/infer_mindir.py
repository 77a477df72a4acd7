"""Run an exported MINDIR on CPU or GPU over preprocess.py's inputs: the Python twin of ascend310_infer.

    python tools/infer_mindir.py --mindir_path=centernet.mindir --input_path=./preprocess_Result/images \
        --output_path=./result_Files [--device_target=CPU] [--device_id=0]

Same interface and files as the Ascend 310 app (ascend310_infer/out/main), so
scripts/run_infer_310.sh can use either (INFER_APP): every <input_path>/<name>.bin (float32,
the model's input shape) gives <output_path>/<name>_<i>.bin for each model output i (here one:
the (1, K, 6) float32 detections). A .bin of the wrong size is an error naming it.

A model exported with --export_dynamic_shape=true takes any input height/width; a .bin holds no
shape, so each input's comes from preprocess.py's <meta_path>/<name>.json (inp_height,
inp_width; default meta_path: the meta/ folder beside input_path). One graph serves every shape.
"""
import argparse
import glob
import json
import logging
import os
import sys

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src.infer_chain import META_DIR, infer_bin_folder  # noqa: E402
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
    parser.add_argument("--meta_path", default="",
                        help="dynamic-shape models: folder of <name>.json with inp_height/inp_width "
                             "(default: meta/ beside input_path)")
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


def is_dynamic(shape):
    """Whether a model input shape leaves some dimension free (stored as a negative size)."""
    return any(d < 0 for d in shape)


def input_shape_from_meta(model_shape, meta_dir, bin_path):
    """The (1, 3, H, W) shape of one input of a dynamic-shape model, from preprocess.py's metadata."""
    stem = os.path.splitext(os.path.basename(bin_path))[0]
    path = os.path.join(meta_dir, stem + ".json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            meta = json.load(f)
        height, width = int(meta["inp_height"]), int(meta["inp_width"])
    except FileNotFoundError as err:
        raise FileNotFoundError("the model takes any input height/width and %s carries no shape: its metadata %s "
                                "is missing (run preprocess.py, or pass --meta_path)" % (bin_path, path)) from err
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError("malformed preprocess metadata %s (needs inp_height and inp_width): %r" % (path, err)) from err
    shape = tuple(model_shape[:2]) + (height, width)
    if any(m >= 0 and m != d for m, d in zip(model_shape, shape)):
        raise ValueError("%s gives input shape %s but the model takes %s" % (path, shape, model_shape))
    return shape


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
    if is_dynamic(shape):
        # Without this a loaded dynamic-shape graph is compiled for the first input's shape only.
        net.set_inputs(Tensor(shape=[d if d >= 0 else None for d in shape], dtype=ms.float32))

    def predict(data):
        outputs = net(Tensor(data))
        return [o.asnumpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]

    if is_dynamic(shape):
        meta_dir = args.meta_path or os.path.join(os.path.dirname(os.path.abspath(args.input_path)), META_DIR)
        shapes = {path: input_shape_from_meta(shape, meta_dir, path) for path in files}
        logger.info("%s takes any input height/width: %d inputs of %d shapes, one graph", args.mindir_path,
                    len(files), len(set(shapes.values())))
        total = sum(infer_bin_folder([path], shapes[path], dtype, predict, args.output_path) for path in files)
    else:
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
