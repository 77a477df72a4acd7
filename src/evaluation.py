"""COCO-side helpers of evaluation: data paths, annotation loading, COCOeval, result files.

Shared by eval.py, postprocess.py (the Ascend 310 chain) and tools/detect_images.py. Result
files are written to a hidden temporary beside the target and renamed when complete, so a
failed run never leaves a half-written results.json.
"""
import contextlib
import io
import json
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

# COCOeval.stats, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# (precision?, IoU threshold or None for 0.50:0.95, area, maxDets) of each line of COCOeval.summarize().
_STAT_LINES = ((True, None, "all", 100), (True, 0.5, "all", 100), (True, 0.75, "all", 100),
               (True, None, "small", 100), (True, None, "medium", 100), (True, None, "large", 100),
               (False, None, "all", 1), (False, None, "all", 10), (False, None, "all", 100),
               (False, None, "small", 100), (False, None, "medium", 100), (False, None, "large", 100))
# Annotation file and image folder under a COCO root, per run_mode.
COCO_LAYOUT = {"val": ("annotations/instances_val2017.json", "val2017"),
               "test": ("annotations/image_info_test-dev2017.json", "test2017")}
# Category ids of the 80 COCO classes in contiguous order (the order of dataset_config.coco_classes).
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
                     28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
                     54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
                     81, 82, 84, 85, 86, 87, 88, 89, 90)


class DataError(ValueError):
    """The evaluation data (annotation file, images) is missing or does not fit the configuration."""


def resolve_data_paths(data_dir, run_mode, ann_file="", image_dir="", root_key="data_dir", need_images=True):
    """(annotation file, image folder) for ``run_mode``, checked to exist (the folder when ``need_images``).

    ``ann_file`` / ``image_dir`` (custom data) override the COCO layout under ``data_dir``:
    val -> annotations/instances_val2017.json + val2017/, test -> annotations/
    image_info_test-dev2017.json + test2017/.
    """
    if run_mode not in COCO_LAYOUT:
        raise DataError("run_mode must be val or test, got %r" % run_mode)
    rel_ann, rel_images = COCO_LAYOUT[run_mode]
    custom = ann_file and (image_dir or not need_images)
    if not custom and not data_dir:
        raise DataError("give --%s (a COCO root), or both --eval_ann_file and --eval_image_dir" % root_key)
    if data_dir and not custom and not os.path.isdir(data_dir):
        raise DataError("--%s=%s: folder not found" % (root_key, data_dir))
    ann_file = ann_file or os.path.join(data_dir, rel_ann)
    image_dir = image_dir or os.path.join(data_dir or ".", rel_images)
    if not os.path.isfile(ann_file):
        raise DataError("annotation file not found: %s (run_mode=%s reads <%s>/%s; give --eval_ann_file for "
                        "custom data)" % (ann_file, run_mode, root_key, rel_ann))
    if need_images and not os.path.isdir(image_dir):
        raise DataError("image folder not found: %s (run_mode=%s reads <%s>/%s; give --eval_image_dir for "
                        "custom data)" % (image_dir, run_mode, root_key, rel_images))
    return ann_file, image_dir


class CocoData:
    """A COCO-format json (instances or image_info) and its image folder.

    ``images``: image entries sorted by id (dicts with id, file_name and, when given, width
    and height); ``categories``: sorted by id, so contiguous class j is ``category_ids[j]``
    (the order of the MindRecord converter). The pycocotools index is built on demand.
    """

    def __init__(self, ann_file, image_dir):
        self.ann_file, self.image_dir = ann_file, image_dir
        try:
            with open(ann_file, "r", encoding="utf-8") as f:
                self.doc = json.load(f)
        except FileNotFoundError as err:
            raise DataError("annotation file not found: %s" % ann_file) from err
        except (ValueError, UnicodeDecodeError) as err:
            raise DataError("malformed json in %s: %s" % (ann_file, err)) from err
        doc = self.doc
        if not isinstance(doc, dict) or any(not isinstance(doc.get(k), list) for k in ("images", "categories")):
            raise DataError("%s is not a COCO file: it needs 'images' and 'categories' lists" % ann_file)
        try:
            self.categories = sorted(({"id": int(c["id"]), "name": str(c.get("name", c["id"]))}
                                      for c in doc["categories"]), key=lambda c: c["id"])
            self.images = sorted((dict(i, id=int(i["id"]), file_name=str(i["file_name"])) for i in doc["images"]),
                                 key=lambda i: i["id"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError("%s: an image or category entry lacks a valid id/file_name: %r" % (ann_file, err)) from err
        if not self.categories:
            raise DataError("%s has no categories" % ann_file)
        if len({c["id"] for c in self.categories}) != len(self.categories):
            raise DataError("%s: duplicate category ids" % ann_file)
        self.category_ids = [c["id"] for c in self.categories]
        self.class_names = [c["name"] for c in self.categories]
        self.has_annotations = isinstance(doc.get("annotations"), list)
        self._coco = None

    def __len__(self):
        return len(self.images)

    def check_num_classes(self, num_classes):
        if num_classes != len(self.categories):
            raise DataError("dataset_config.num_classes is %d but %s has %d categories: pass "
                            "--dataset_config.num_classes=%d (and a checkpoint trained for them)"
                            % (num_classes, self.ann_file, len(self.categories), len(self.categories)))

    def select(self, max_images):
        """Keep the first ``max_images`` images (by id) when max_images > 0."""
        if max_images and max_images > 0:
            self.images = self.images[:max_images]
        return self

    def image_path(self, entry):
        return os.path.join(self.image_dir, entry["file_name"])

    def check_images(self):
        """Raise DataError naming the images listed in the json but absent from the folder."""
        missing = [e["file_name"] for e in self.images if not os.path.isfile(self.image_path(e))]
        if missing:
            raise DataError("%d image(s) listed in %s are missing from %s: %s%s"
                            % (len(missing), self.ann_file, self.image_dir, ", ".join(missing[:5]),
                               " ..." if len(missing) > 5 else ""))

    @property
    def coco(self):
        """pycocotools COCO object of the json (index built once, its prints silenced)."""
        if self._coco is None:
            from pycocotools.coco import COCO
            coco = COCO()
            coco.dataset = self.doc
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
            self._coco = coco
        return self._coco

    def annotations_of(self, image_id):
        """Annotations of one image (for drawing the ground truth)."""
        if not self.has_annotations:
            return []
        return self.coco.imgToAnns.get(image_id, [])


def format_table(stats):
    """The 12 lines of COCOeval.summarize() for ``stats`` (same format, newline-terminated)."""
    lines = []
    for value, (precision, iou, area, max_dets) in zip(stats, _STAT_LINES):
        iou_text = "0.50:0.95" if iou is None else "%0.2f" % iou
        lines.append(" {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}".format(
            "Average Precision" if precision else "Average Recall", "(AP)" if precision else "(AR)",
            iou_text, area, max_dets, float(value)))
    return "\n".join(lines) + "\n"


def coco_evaluate(data, records, image_ids):
    """COCOeval (bbox) of ``records`` on ``image_ids``: (stats dict by STAT_NAMES, table text).

    An empty result list cannot be loaded by pycocotools: it gives all-zero stats and a
    warning instead of an exception.
    """
    if not data.has_annotations:
        raise DataError("%s has no 'annotations': it cannot be evaluated (use --run_mode=test or "
                        "--enable_eval=false to only write the results)" % data.ann_file)
    if not records:
        logger.warning("no detections at all on %d images: results.json is empty and every metric is 0",
                       len(image_ids))
        stats = np.zeros(len(STAT_NAMES))
        return dict(zip(STAT_NAMES, stats.tolist())), format_table(stats)
    from pycocotools.cocoeval import COCOeval
    gt = data.coco
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        dt = gt.loadRes(records)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    logger.debug("COCOeval: %s", chatter.getvalue().strip())
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluator.summarize()
    return dict(zip(STAT_NAMES, [float(v) for v in evaluator.stats])), table.getvalue()


def metrics_document(stats, **counts):
    """metrics.json content: the 12 figures by name, then counts and settings."""
    doc = {name: float(stats[name]) for name in STAT_NAMES}
    doc.update(counts)
    return doc


def _atomic_write(path, write):
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, ".%s.tmp-%d" % (name, os.getpid()))
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json_atomic(path, obj, indent=None):
    """json.dump ``obj`` to a hidden temporary beside ``path``, then rename it onto ``path``."""
    separators = (",", ":") if indent is None else (",", ": ")
    return _atomic_write(path, lambda f: json.dump(obj, f, indent=indent, separators=separators))


def write_text_atomic(path, text):
    return _atomic_write(path, lambda f: f.write(text))


def default_category_ids(num_classes, class_names):
    """Category ids when no annotation file names them: COCO's 80 ids for the 80 COCO classes, else 1..N."""
    if num_classes == len(COCO_CATEGORY_IDS) and len(class_names) == num_classes:
        return list(COCO_CATEGORY_IDS)
    return list(range(1, num_classes + 1))
