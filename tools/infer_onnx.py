"""Run an exported ONNX model with ONNX Runtime (CPU) over preprocess.py's inputs.

    python tools/infer_onnx.py --onnx_path=centernet.onnx --input_path=./preprocess_Result/images \
        --output_path=./result_Files

Same files as tools/infer_mindir.py and the Ascend 310 app, so postprocess.py reads its
outputs and scripts/run_infer_310.sh can use it (INFER_APP; the script's --mindir_path is
accepted as the model path): every <input_path>/<name>.bin (float32, the model's input
shape) gives <output_path>/<name>_0.bin, the (1, K, 6) float32 detections. A .bin of the
wrong size is an error naming it. Needs the optional package onnxruntime.
"""
import argparse
import glob
import logging
import os
import sys

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger("infer_onnx")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx_path", "--mindir_path", dest="onnx_path", required=True,
                        help="exported model (export.py --export_format=ONNX)")
    parser.add_argument("--input_path", required=True, help="folder of input .bin files (preprocess.py images/)")
    parser.add_argument("--output_path", default="./result_Files", help="folder receiving <name>_<i>.bin")
    parser.add_argument("--device_target", default="CPU", choices=["CPU"],
                        help="ONNX Runtime's CPU provider (the only one installed here)")
    parser.add_argument("--device_id", type=int, default=0, help="accepted for the 310 app's interface; unused")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's default)")
    return parser.parse_args(argv)


class OnnxRunner:
    """An ONNX Runtime session of a model with one float32 image input: (1, 3, H, W) -> its outputs."""

    def __init__(self, path, threads=0):
        try:
            import onnxruntime
        except ImportError as err:
            raise RuntimeError("running ONNX models needs the optional package onnxruntime: pip install "
                               "onnxruntime (the tested version is in requirements-test.txt)") from err
        if not os.path.isfile(path):
            raise FileNotFoundError("ONNX model not found: %s" % path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001  (onnxruntime raises its own exception types)
            raise RuntimeError("ONNX Runtime cannot load %s: %s" % (path, str(err).splitlines()[0])) from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise ValueError("%s must have one float32 input, has %s" % (path, [(i.name, i.type) for i in inputs]))
        self.path = path
        self.input_name = inputs[0].name
        self.shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def check_shape(self, shape, source):
        """Raise a ValueError naming ``source`` when ``shape`` does not fit the model's input."""
        if len(shape) != len(self.shape) or any(m is not None and m != s for m, s in zip(self.shape, shape)):
            wanted = tuple("?" if m is None else m for m in self.shape)
            raise ValueError("%s has shape %s but %s takes %s (export with --export_dynamic_shape=true for "
                             "other sizes)" % (source, tuple(shape), self.path, wanted))

    def __call__(self, inp):
        """float32 array -> list of output arrays."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(inp, np.float32)})


def onnx_predictor(path, num_classes, flip_test, threads=0):
    """predict(input (1, 3, H, W)) -> (K, 6) detections of an exported model, for src.inference.detect_images.

    The model's recorded class count and flip_test (export.py's metadata) must match the
    configuration, since post-processing relies on both.
    """
    runner = OnnxRunner(path, threads)
    recorded = {"num_classes": str(num_classes), "flip_test": str(bool(flip_test))}
    for key, value in recorded.items():
        if key in runner.metadata and runner.metadata[key] != value:
            raise ValueError("%s was exported with %s=%s but the configuration has %s: export it again or set "
                             "--%s" % (path, key, runner.metadata[key], value,
                                       "dataset_config.num_classes" if key == "num_classes" else key))

    def predict(inp):
        runner.check_shape(inp.shape, "the pre-processed input")
        return runner(inp)[0][0]
    return predict


def run(args):
    from src.infer_chain import infer_bin_folder
    if not os.path.isdir(args.input_path):
        raise FileNotFoundError("input folder not found: %s" % args.input_path)
    files = sorted(glob.glob(os.path.join(args.input_path, "*.bin")))
    if not files:
        raise FileNotFoundError("no .bin input files in %s" % args.input_path)
    runner = OnnxRunner(args.onnx_path, args.threads)
    if None in runner.shape:
        raise ValueError("%s has a dynamic input shape %s; .bin inputs carry no shape: export with a fixed "
                         "export_config.input_res" % (args.onnx_path, runner.shape))
    total = infer_bin_folder(files, runner.shape, np.float32, runner, args.output_path)
    logger.info("%d inputs inferred by ONNX Runtime in %.1f s (%.2f ms per input) -> %s",
                len(files), total, 1000 * total / len(files), args.output_path)
    return len(files)


def main(argv=None):
    """Exit codes as the configuration-driven entry scripts: 2 with a one-line error (argparse's too)."""
    from src.model_utils.entry import guarded, setup_logging
    setup_logging()
    args = parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
