"""The Ascend 310 chain's shared facts: which images it runs on and the files between its steps.

preprocess.py writes, below ``pre_result_path``::

    images/<image_id>.bin   float32, C order, (1, 3, H, W) at H, W = export_config.input_res
    meta/<image_id>.json    META_KEYS plus the geometry that maps detections back to the image
    preprocess_info.json    input shape, annotation file, image count

the 310 app (or tools/infer_mindir.py) writes ``<result_path>/<image_id>_0.bin``, the (1, K, 6)
float32 detections, and postprocess.py reads both.
"""
import glob
import json
import os
import time

import numpy as np

from src.data.coco import CocoData, DataError, resolve_data_paths
from src.model_utils.config import check_input_res

IMAGES_DIR, META_DIR, INFO_NAME = "images", "meta", "preprocess_info.json"
# Keys postprocess.py needs in every meta file (preprocess.py also writes file_name, sizes and scale).
META_KEYS = ("image_id", "c", "s", "out_height", "out_width")


def chain_data(cfg, need_images=True):
    """The chain's data: --val_data_dir (or --data_dir) as the COCO root, custom paths as eval.py."""
    root = cfg.val_data_dir or cfg.data_dir
    ann_file, image_dir = resolve_data_paths(root, cfg.run_mode, cfg.eval_ann_file, cfg.eval_image_dir,
                                             root_key="val_data_dir", need_images=need_images)
    return CocoData(ann_file, image_dir).select(cfg.eval_max_images)


def input_resolution(cfg):
    """[h, w] of the exported model's input, which preprocess.py prepares."""
    return check_input_res(cfg.export_config.input_res, "export_config.input_res")


def meta_dir(cfg):
    """Folder of the per-image metadata: --meta_path, default <pre_result_path>/meta."""
    return cfg.meta_path or os.path.join(cfg.pre_result_path, META_DIR)


def read_metas(folder):
    """Every <folder>/<image_id>.json, sorted by image id; DataError naming a missing or malformed file."""
    paths = sorted(glob.glob(os.path.join(folder, "*.json")))
    if not paths:
        raise DataError("no preprocess metadata (*.json) in %s: run preprocess.py first" % folder)
    metas = []
    for path in paths:
        try:
            with open(path, "r", encoding="utf-8") as f:
                meta = json.load(f)
            missing = [k for k in META_KEYS if k not in meta]
            if missing:
                raise KeyError(", ".join(missing))
            meta["image_id"] = int(meta["image_id"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataError("malformed preprocess metadata %s: %r" % (path, err)) from err
        metas.append(meta)
    return sorted(metas, key=lambda m: m["image_id"])


def read_detections(result_dir, image_id):
    """(K, 6) float32 detections of one image from <result_dir>/<image_id>_0.bin."""
    path = os.path.join(result_dir, "%d_0.bin" % image_id)
    if not os.path.isfile(path):
        raise DataError("inference output missing: %s (did the app run on every input?)" % path)
    dets = np.fromfile(path, np.float32)
    if dets.size == 0 or dets.size % 6:
        raise DataError("%s holds %d floats: not (1, K, 6) detections" % (path, dets.size))
    return dets.reshape(-1, 6)


def infer_bin_folder(files, shape, dtype, predict, output_path):
    """Run ``predict(array) -> list of arrays`` on each raw .bin input; write ``<stem>_<i>.bin`` outputs.

    Every file must hold exactly one ``shape`` x ``dtype`` input. Returns the seconds spent in
    ``predict`` (the runners' inference time, file I/O excluded).
    """
    from src.model_utils.file_io import write_array_atomic
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    os.makedirs(output_path, exist_ok=True)
    total = 0.0
    for path in files:
        size = os.path.getsize(path)
        if size != expected:
            raise ValueError("%s holds %d bytes but the model input %s %s needs %d"
                             % (path, size, tuple(shape), np.dtype(dtype).name, expected))
        data = np.fromfile(path, dtype).reshape(shape)
        start = time.perf_counter()
        arrays = predict(data)
        total += time.perf_counter() - start
        stem = os.path.splitext(os.path.basename(path))[0]
        for i, array in enumerate(arrays):
            write_array_atomic(os.path.join(output_path, "%s_%d.bin" % (stem, i)), np.ascontiguousarray(array))
    return total


def input_shape_from_meta(model_shape, meta_folder, bin_path):
    """The (1, 3, H, W) shape of one input of a dynamic-shape model, from preprocess.py's metadata.

    A .bin holds no shape; ``<meta_folder>/<stem>.json`` has its inp_height and inp_width.
    ``model_shape`` has None for a free dimension.
    """
    stem = os.path.splitext(os.path.basename(bin_path))[0]
    path = os.path.join(meta_folder, stem + ".json")
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
    if any(m is not None and m != d for m, d in zip(model_shape, shape)):
        shown = tuple(-1 if m is None else m for m in model_shape)
        raise ValueError("%s gives input shape %s but the model takes %s" % (path, shape, shown))
    return shape
