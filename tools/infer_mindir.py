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
The runtime is src/deploy/runtimes.py (MindirModel); this file is its command line.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install(preload=("mindspore",))  # imported while signals are held

import argparse  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from src.deploy.chain import META_DIR, infer_bin_folder, input_shape_from_meta  # noqa: E402
from src.deploy.runtimes import MindirModel, is_dynamic, model_inputs  # noqa: E402, F401  (model_inputs: tests)
from src.model_utils.device_adapter import set_device  # noqa: E402
from src.model_utils.entry import guarded, setup_logging  # noqa: E402
from src.model_utils.file_io import prepare_output_folder  # noqa: E402

logger = logging.getLogger("infer_mindir")


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


def run(args):
    if not os.path.isfile(args.mindir_path):
        raise FileNotFoundError("MINDIR not found: %s" % args.mindir_path)
    if not os.path.isdir(args.input_path):
        raise FileNotFoundError("input folder not found: %s" % args.input_path)
    files = sorted(glob.glob(os.path.join(args.input_path, "*.bin")))
    if not files:
        raise FileNotFoundError("no .bin input files in %s" % args.input_path)
    prepare_output_folder(args.output_path, "--output_path", create=False)
    set_device(args, args.device_target, args.device_id)
    model = MindirModel(args.mindir_path)
    if is_dynamic(model.shape):
        meta_dir = args.meta_path or os.path.join(os.path.dirname(os.path.abspath(args.input_path)), META_DIR)
        shapes = {path: input_shape_from_meta(model.shape, meta_dir, path) for path in files}
        logger.info("%s takes any input height/width: %d inputs of %d shapes, one graph", args.mindir_path,
                    len(files), len(set(shapes.values())))
        total = sum(infer_bin_folder([path], shapes[path], model.dtype, model, args.output_path) for path in files)
    else:
        total = infer_bin_folder(files, model.shape, model.dtype, model, args.output_path)
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
