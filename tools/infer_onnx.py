"""Run an exported ONNX model with ONNX Runtime or OpenVINO (CPU) over preprocess.py's inputs.

    python tools/infer_onnx.py --onnx_path=centernet.onnx --input_path=./preprocess_Result/images \
        --output_path=./result_Files [--runtime=openvino [--precision=bf16]]

Same files as tools/infer_mindir.py and the Ascend 310 app, so postprocess.py reads its
outputs and scripts/run_infer_310.sh can use it (INFER_APP; the script's --mindir_path is
accepted as the model path): every <input_path>/<name>.bin (float32, the model's input
shape) gives <output_path>/<name>_0.bin, the (1, K, 6) float32 detections. A .bin of the
wrong size is an error naming it. ``--runtime`` chooses ONNX Runtime (default) or OpenVINO, and
``--precision`` OpenVINO's bf16 (on a CPU with native bf16); each needs its optional package
(onnxruntime, openvino). The runtimes are src/deploy/runtimes.py; this file is their command line.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import argparse  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from src.deploy.chain import infer_bin_folder  # noqa: E402
from src.deploy.runtimes import PRECISIONS, open_model  # noqa: E402
from src.infer.predictor import RUNTIME_LABELS  # noqa: E402
from src.model_utils.entry import guarded, setup_logging  # noqa: E402
from src.model_utils.file_io import prepare_output_folder  # noqa: E402

logger = logging.getLogger("infer_onnx")
RUNTIMES = ("onnxruntime", "openvino")  # the runtimes of an ONNX model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx_path", "--mindir_path", dest="onnx_path", required=True,
                        help="exported model (export.py --export_format=ONNX)")
    parser.add_argument("--input_path", required=True, help="folder of input .bin files (preprocess.py images/)")
    parser.add_argument("--output_path", default="./result_Files", help="folder receiving <name>_<i>.bin")
    parser.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES,
                        help="the runtime running the model (default onnxruntime)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="arithmetic: fp32, or bf16 with --runtime=openvino on a CPU with native bf16")
    parser.add_argument("--device_target", default="CPU", choices=["CPU"],
                        help="the runtimes' CPU device (the only one installed here)")
    parser.add_argument("--device_id", type=int, default=0, help="accepted for the 310 app's interface; unused")
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0: the runtime's default)")
    return parser.parse_args(argv)


def run(args):
    if not os.path.isdir(args.input_path):
        raise FileNotFoundError("input folder not found: %s" % args.input_path)
    files = sorted(glob.glob(os.path.join(args.input_path, "*.bin")))
    if not files:
        raise FileNotFoundError("no .bin input files in %s" % args.input_path)
    prepare_output_folder(args.output_path, "--output_path", create=False)
    runner = open_model(args.onnx_path, args.runtime, threads=args.threads, precision=args.precision)
    if None in runner.shape:
        raise ValueError("%s has a dynamic input shape %s; .bin inputs carry no shape: export with a fixed "
                         "export_config.input_res" % (args.onnx_path, runner.shape))
    total = infer_bin_folder(files, runner.shape, np.float32, runner, args.output_path)
    logger.info("%d inputs inferred by %s (%s) in %.1f s (%.2f ms per input) -> %s", len(files),
                RUNTIME_LABELS[args.runtime], args.precision, total, 1000 * total / len(files), args.output_path)
    return len(files)


def main(argv=None):
    """Exit codes as the configuration-driven entry scripts: 2 with a one-line error (argparse's too)."""
    setup_logging()
    args = parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
