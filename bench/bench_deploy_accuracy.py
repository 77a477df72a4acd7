"""COCO AP of one trained model on every runtime x precision, through eval.py's pre- and post-processing.

    python bench/bench_deploy_accuracy.py --config_path=quick_start_config.yaml --data_dir=COCO_ROOT \
        --load_checkpoint_path=CKPT --mindrecord_dir=MINDRECORD [--work DIR] [--json out.json] [other config keys]

The checkpoint runs as eval.py runs it (MindSpore, the reference) and as its ONNX export
(export.py --export_format=ONNX at dataset_config.input_res_test, so eval_config.keep_res must be
false) in ONNX Runtime fp32, OpenVINO fp32 and, where the CPU has it natively, OpenVINO bf16; and
quantized to int8 on both as export.py --export_quantize=int8 does (src/deploy/quantize.py: the
quant_* keys, calibrated on quant_calibration_images images of mindrecord_dir or
quant_calibration_dir, pre-processed as eval.py does; OpenVINO runs its float layers in fp32, and in
bf16 where the CPU has it). Every row
goes through src.infer.detect.detect_images and src.infer.coco_eval with the same settings, so
only the network's arithmetic differs. Prints and records AP, AP50, the difference to
MindSpore's AP, the seconds per image (loaded machine: not a speed figure, bench_deploy.py is)
and the model file sizes. Exits 1 when an fp32 runtime's AP departs from MindSpore's by more than
FP32_AP_TOL (the issue's "equal to 1e-4 AP": two float32 arithmetics change only near-tie
detections); bf16 and int8 are reported against their goals (BF16_AP_GOAL, INT8_AP_GOAL).
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import mindspore as ms  # noqa: E402,F401  (before onnx: the other import order breaks mindspore's protobuf modules)

from src.data.coco import CocoData, resolve_data_paths  # noqa: E402
from src.deploy.onnx_export import export_onnx  # noqa: E402
from src.deploy import runtimes  # noqa: E402
from src.infer.coco_eval import coco_evaluate  # noqa: E402
from src.infer.detect import EvalSettings, detect_images  # noqa: E402
from src.infer.detector import build_detector, build_eval_network  # noqa: E402
from src.model_utils.config import ConfigError, get_config  # noqa: E402
from src.model_utils.device_adapter import set_device  # noqa: E402

logger = logging.getLogger(__name__)

FP32_AP_TOL = 1e-4
BF16_AP_GOAL = 0.005
INT8_AP_GOAL = 0.01


def export_fp32(cfg, checkpoint, path):
    """The checkpoint's fixed-shape fp32 ONNX at export_config.input_res, with export.py's metadata."""
    num_classes = cfg.dataset_config.num_classes
    return export_onnx(build_eval_network(cfg, num_classes, checkpoint), path, cfg.export_config.input_res, False,
                       metadata={"num_classes": num_classes, "K": cfg.eval_config.K, "flip_test": cfg.flip_test})


def validation_data(cfg, data_dir, num_classes, max_images=None):
    """The validation set of ``data_dir`` (or eval_ann_file / eval_image_dir), as eval.py reads it."""
    data = CocoData(*resolve_data_paths(data_dir, "val", cfg.eval_ann_file, cfg.eval_image_dir))
    data = data.select(cfg.eval_max_images if max_images is None else max_images)
    data.check_num_classes(num_classes)
    return data


def export_models(overrides, cfg, settings, work):
    """{"fp32": path, "int8": path}: export.py's ONNX of the checkpoint and its int8 quantization."""
    from src.deploy.quantize import calibration_from_config, quantize_from_config
    export_cfg = get_config(overrides + ["--export_load_ckpt=%s" % cfg.load_checkpoint_path, "--export_format=ONNX",
                                         "--export_name=%s" % os.path.join(work, "centernet"),
                                         "--export_dynamic_shape=false",
                                         "--export_config.input_res=%s" % list(settings.input_res)])
    paths = {"fp32": os.path.join(work, "centernet.onnx"), "int8": os.path.join(work, "centernet_int8.onnx")}
    export_fp32(export_cfg, cfg.load_checkpoint_path, paths["fp32"])
    calibration = calibration_from_config(export_cfg, EvalSettings.for_export(export_cfg, False).prepare)
    quantize_from_config(export_cfg, paths["fp32"], paths["int8"], calibration)
    return paths


def rows_to_run(paths):
    """[(row name, runtime, file precision, inference precision)] available on this machine."""
    rows = [("ONNX Runtime fp32", "onnxruntime", "fp32", "fp32"), ("OpenVINO fp32", "openvino", "fp32", "fp32"),
            ("OpenVINO bf16", "openvino", "fp32", "bf16"), ("ONNX Runtime int8", "onnxruntime", "int8", "fp32"),
            ("OpenVINO int8", "openvino", "int8", "fp32"),
            ("OpenVINO int8, float layers bf16", "openvino", "int8", "bf16")]
    return [row for row in rows if row[3] != "bf16" or runtimes.bf16_supported()]


def evaluate(data, settings, predict):
    """(COCO stats, seconds per image) of ``predict(input) -> (K, 6)`` on ``data``."""
    start = time.perf_counter()
    records, timing = detect_images(data.images, data.image_path, lambda inp, meta: predict(inp), settings,
                                    data.category_ids)
    seconds = (time.perf_counter() - start) / max(1, timing["images"])
    stats, _ = coco_evaluate(data, records, [e["id"] for e in data.images])
    return stats, seconds


def run(args, overrides):
    cfg = get_config(overrides)
    if not cfg.load_checkpoint_path or not cfg.data_dir:
        raise ConfigError("--load_checkpoint_path and --data_dir are required: the trained model and its COCO root")
    settings = EvalSettings(cfg)
    if settings.keep_res or len(settings.scales) != 1:
        raise ConfigError("the export has one input size: set --eval_config.keep_res=false and one scale")
    set_device(cfg)
    data = validation_data(cfg, cfg.data_dir, settings.num_classes)
    results = {"images": len(data), "config": " ".join(overrides), "calibration": {
        "images": cfg.quant_calibration_images, "source": cfg.quant_calibration_dir or cfg.mindrecord_dir,
        "method": cfg.quant_calibration, "float_layers": cfg.quant_float_layers}, "rows": {}}

    detector = build_detector(cfg, settings, data.images, cfg.load_checkpoint_path)
    stats, seconds = evaluate(data, settings, detector)
    results["rows"]["MindSpore fp32"] = {"AP": stats["AP"], "AP50": stats["AP50"], "s_per_image": seconds}
    with tempfile.TemporaryDirectory(prefix="deploy_accuracy_", dir=args.work) as work:
        paths = export_models(overrides, cfg, settings, work)
        results["file_mb"] = {k: round(os.path.getsize(p) / 2 ** 20, 2) for k, p in paths.items()}
        for name, runtime, kind, precision in rows_to_run(paths):
            predict = runtimes.model_predictor(paths[kind], settings.num_classes, cfg.flip_test, runtime=runtime,
                                               precision=precision)
            stats, seconds = evaluate(data, settings, predict)
            results["rows"][name] = {"AP": stats["AP"], "AP50": stats["AP50"], "s_per_image": seconds}
            logger.info("%s: AP %.4f, AP50 %.4f", name, stats["AP"], stats["AP50"])
    reference = results["rows"]["MindSpore fp32"]["AP"]
    failed = []
    for name, row in results["rows"].items():
        row["AP_diff"] = row["AP"] - reference
        goal = FP32_AP_TOL if "fp32" in name else INT8_AP_GOAL if "int8" in name else BF16_AP_GOAL
        row["goal"], row["within_goal"] = goal, abs(row["AP_diff"]) <= goal
        if "fp32" in name and not row["within_goal"]:
            failed.append(name)
    results["failed"] = failed
    return results


def main(argv=None):
    """Print the AP table; 0, 1 when an fp32 runtime departs from MindSpore, 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="folder for the temporary model files (default: the system's)")
    parser.add_argument("--json", help="also write the result here")
    args, overrides = parser.parse_known_args(argv)
    from src.model_utils.entry import guarded, setup_logging
    setup_logging()
    holder = {}
    code = guarded(lambda: holder.update(result=run(args, overrides)))
    if code:
        return code
    result = holder["result"]
    cal = result["calibration"]
    print("%d images (%s); int8: %s calibration on %d images of %s, float layers: %s" % (
        result["images"], result["config"], cal["method"], cal["images"], cal["source"], cal["float_layers"]))
    for name, row in result["rows"].items():
        print("  %-32s AP %.4f  AP50 %.4f  AP - MindSpore's %+.4f (%s %g)  %.3f s/image" % (
            name, row["AP"], row["AP50"], row["AP_diff"], "within" if row["within_goal"] else "BEYOND", row["goal"],
            row["s_per_image"]))
    print("  model files: %s" % ", ".join("%s %.2f MB" % kv for kv in result["file_mb"].items()))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=1)
    if result["failed"]:
        logger.error("fp32 AP differs from MindSpore's by more than %g: %s", FP32_AP_TOL, ", ".join(result["failed"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
