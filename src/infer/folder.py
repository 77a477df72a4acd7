"""Detect a folder of photos (no annotations needed): drawn images plus a results json.

The logic of tools/detect_images.py (its docstring documents the command and the outputs):
listing the images, class names and ids, the predictor (src/infer/predictor.py: the checkpoint,
or an exported model on the runtime of --infer_runtime), the detection loop of src/infer/detect.py, drawing, and
results.json.
"""
import logging
import os

from src.data.coco import CocoData, DataError, default_category_ids
from src.data.image_file import file_header_size, list_image_files
from src.infer.detect import EvalSettings, detect_images
from src.infer.predictor import build_predictor, model_choice
from src.model_utils.config import ConfigError
from src.model_utils.file_io import claim_output_folder, write_json_atomic
from src.visual import draw_detections, save_image

logger = logging.getLogger("detect_images")

def list_images(image_dir):
    if not image_dir:
        raise ConfigError("--image_dir is required: the folder of images to detect")
    try:
        return list_image_files(image_dir)
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from None


def class_info(cfg, num_classes):
    """(names, category ids, {file_name: image id}) from --eval_ann_file or the configuration."""
    if cfg.eval_ann_file:
        data = CocoData(cfg.eval_ann_file, "")
        data.check_num_classes(num_classes)
        return data.class_names, data.category_ids, {e["file_name"]: e["id"] for e in data.images}
    names = list(cfg.dataset_config.coco_classes)
    if len(names) != num_classes:
        logger.warning("dataset_config.coco_classes has %d names for %d classes: drawing class indices; pass "
                       "--eval_ann_file=<COCO json> to name them", len(names), num_classes)
        names = ["class_%d" % j for j in range(num_classes)]
    return names, default_category_ids(num_classes, names), {}


def output_names(names):
    """PNG name per image: <stem>.png, or <stem>_<ext>.png when two images share a stem."""
    stems = [os.path.splitext(n)[0] for n in names]
    return {n: (s if stems.count(s) == 1 else s + "_" + os.path.splitext(n)[1][1:]) + ".png"
            for n, s in zip(names, stems)}


def run_detect(cfg):
    """Detect; save_result_dir is checked and owned by this run (FolderLock) before the model is built."""
    settings = EvalSettings(cfg)
    choice = model_choice(cfg)
    out_dir = cfg.save_result_dir or "."
    list_images(cfg.image_dir)
    with claim_output_folder(out_dir, "--save_result_dir", "detection"):
        return _detect(cfg, settings, choice, out_dir)


def _detect(cfg, settings, choice, out_dir):
    names = list_images(cfg.image_dir)
    class_names, category_ids, known_ids = class_info(cfg, settings.num_classes)
    drawn_dir = os.path.join(out_dir, "images")
    png_names = output_names(names)
    entries = []
    first_free = max(known_ids.values(), default=-1) + 1
    for index, name in enumerate(names):
        entry = {"id": known_ids.get(name, first_free + index), "file_name": name}
        size = file_header_size(os.path.join(cfg.image_dir, name)) if settings.keep_res else None
        if size:
            entry["width"], entry["height"] = size
        entries.append(entry)

    detector = build_predictor(cfg, settings, entries, choice)
    colors, thresh = cfg.eval_config.color_list, cfg.eval_config.score_thresh

    def draw(entry, image, per_class):
        save_image(os.path.join(drawn_dir, png_names[entry["file_name"]]),
                   draw_detections(image, per_class, class_names, colors, thresh))

    records, timing = detect_images(entries, lambda e: os.path.join(cfg.image_dir, e["file_name"]),
                                    lambda inp, meta: detector(inp), settings, category_ids, on_image=draw,
                                    skip_unreadable=True, desc="detect")
    by_id = {e["id"]: e["file_name"] for e in entries}
    name_of = dict(zip(category_ids, class_names))
    results = [dict(file_name=by_id[r["image_id"]], category_name=name_of[r["category_id"]], **r) for r in records]
    path = write_json_atomic(os.path.join(out_dir, "results.json"), results, setting="--save_result_dir")
    logger.info("%d images (%d skipped), %d detections (%d drawn at score >= %.2f): %s and %s/",
                timing["images"] - timing["skipped"], timing["skipped"], len(results),
                sum(r["score"] >= thresh for r in results), thresh, path, drawn_dir)
    return path
