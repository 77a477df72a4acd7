"""COCO facts and the one reader of COCO-format annotation files.

Facts: where a COCO root keeps each split (``TRAIN_LAYOUT``, ``EVAL_LAYOUT``, ``resolve_data_paths``) and the
category ids of the 80 COCO classes. The class names are configuration, not facts of this
module: they live in default_config.yaml (``dataset_config.coco_classes``, in the order of
``COCO_CATEGORY_IDS``) because custom data overrides them there. The MindRecord prefix is
configuration too (``mindrecord_prefix``).

``CocoData`` parses a json once, checks it, and serves both sides: the MindRecord converter
(``objects_by_image``) and evaluation (``coco``, pycocotools' index of the same document).
Every problem with the data raises ``DataError`` naming the file.
"""
import collections
import contextlib
import io
import json
import math
import os

from src.data.image_file import file_problem

# Annotation file and image folder below a COCO root: the training split and, per run_mode, evaluation.
TRAIN_LAYOUT = ("annotations/instances_train2017.json", "train2017")
EVAL_LAYOUT = {"val": ("annotations/instances_val2017.json", "val2017"),
               "test": ("annotations/image_info_test-dev2017.json", "test2017")}
# Category ids of the 80 COCO classes in contiguous order (the order of dataset_config.coco_classes).
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
                     28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
                     54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
                     81, 82, 84, 85, 86, 87, 88, 89, 90)


# Why the converter drops an annotation (the keys of its summary's dropped_annotations).
DROP_REASONS = ("non_finite", "zero_size", "outside_image", "unknown_image")


class DataError(ValueError):
    """The data (annotation file, images) is missing, malformed or does not fit the configuration."""


def resolve_data_paths(data_dir, run_mode, ann_file="", image_dir="", root_key="data_dir", need_images=True):
    """(annotation file, image folder) for ``run_mode``, checked to exist (the folder when ``need_images``).

    ``ann_file`` / ``image_dir`` (custom data) override the COCO layout under ``data_dir``:
    val -> annotations/instances_val2017.json + val2017/, test -> annotations/
    image_info_test-dev2017.json + test2017/.
    """
    if run_mode not in EVAL_LAYOUT:
        raise DataError("run_mode must be val or test, got %r" % run_mode)
    rel_ann, rel_images = EVAL_LAYOUT[run_mode]
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


def default_category_ids(num_classes, class_names):
    """Category ids when no annotation file names them: COCO's 80 ids for the 80 COCO classes, else 1..N."""
    if num_classes == len(COCO_CATEGORY_IDS) and len(class_names) == num_classes:
        return list(COCO_CATEGORY_IDS)
    return list(range(1, num_classes + 1))


def _read_json(ann_file):
    try:
        with open(ann_file, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as err:
        raise DataError("annotation file not found: %s" % ann_file) from err
    except IsADirectoryError as err:
        raise DataError("annotation file is a folder: %s" % ann_file) from err
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError("malformed json in %s: %s" % (ann_file, err)) from err


def _outside(x, y, w, h, width, height):
    """Whether box (x, y, w, h) has no overlap with a ``width`` x ``height`` image (False when unknown)."""
    try:
        width, height = float(width), float(height)
    except (TypeError, ValueError):
        return False
    return x >= width or y >= height or x + w <= 0 or y + h <= 0


class CocoData:
    """A COCO-format json (instances or image_info) and its image folder.

    ``images``: image entries sorted by id (dicts with id, file_name and, when given, width
    and height); ``categories``: {"id", "name"} sorted by id, so contiguous class j is
    ``category_ids[j]`` (the class index the MindRecord converter stores). The pycocotools
    index is built on demand.
    """

    def __init__(self, ann_file, image_dir):
        self.ann_file, self.image_dir = ann_file, image_dir
        self.doc = doc = _read_json(ann_file)
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
        for kind, entries in (("category", self.categories), ("image", self.images)):
            if len({e["id"] for e in entries}) != len(entries):
                raise DataError("%s: duplicate %s ids" % (ann_file, kind))
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

    def check_image_dir(self):
        if not os.path.isdir(self.image_dir):
            raise DataError("image folder not found: %s" % self.image_dir)

    def check_images(self):
        """Raise DataError naming the images listed in the json but absent from the folder or not regular files.

        A FIFO, a device or a folder under an image's name would hang or fail the reader
        (src/data/image_file.py): it is named here, before any work.
        """
        problems = [(e["file_name"], file_problem(self.image_path(e))) for e in self.images]
        missing = [name for name, problem in problems if problem == "missing"]
        if missing:
            raise DataError("%d image(s) listed in %s are missing from %s: %s%s"
                            % (len(missing), self.ann_file, self.image_dir, ", ".join(missing[:5]),
                               " ..." if len(missing) > 5 else ""))
        other = ["%s (%s)" % (name, problem) for name, problem in problems if problem]
        if other:
            raise DataError("%d image(s) listed in %s are not regular files in %s: %s%s; give image files only"
                            % (len(other), self.ann_file, self.image_dir, ", ".join(other[:5]),
                               " ..." if len(other) > 5 else ""))

    def objects_by_image(self):
        """Training objects: ({image_id: [(x1, y1, x2, y2, category_id, iscrowd)]}, {"dropped_annotations"}).

        Annotations are dropped and counted by reason: of an unknown image ("unknown_image"),
        with a NaN or infinite coordinate ("non_finite"), with w or h <= 0 ("zero_size"), or
        lying entirely outside an image whose width and height are given ("outside_image").
        One without a valid bbox/category_id/image_id, or with a category not in 'categories',
        is an error, and so is a file without an 'annotations' list (an empty list is legal).
        """
        if not self.has_annotations:
            raise DataError("%s has no 'annotations' list: it cannot train a detector (an image_info file?); "
                            "give an instances file, or \"annotations\": [] for images without objects"
                            % self.ann_file)
        sizes = {i["id"]: (i.get("width"), i.get("height")) for i in self.images}
        image_ids, category_ids = set(sizes), set(self.category_ids)
        by_image = collections.defaultdict(list)
        dropped = dict.fromkeys(DROP_REASONS, 0)
        for ann in self.doc["annotations"]:
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
                cat, img = int(ann["category_id"]), int(ann["image_id"])
            except (KeyError, TypeError, ValueError) as err:
                raise DataError("%s: annotation %r has no valid bbox/category_id/image_id: %r"
                                % (self.ann_file, ann.get("id") if isinstance(ann, dict) else ann, err)) from err
            if cat not in category_ids:
                raise DataError("%s: annotation %r uses category_id %d, not in 'categories'"
                                % (self.ann_file, ann.get("id"), cat))
            if img not in image_ids:
                dropped["unknown_image"] += 1
            elif not all(math.isfinite(v) for v in (x, y, w, h)):
                dropped["non_finite"] += 1
            elif w <= 0 or h <= 0:
                dropped["zero_size"] += 1
            elif _outside(x, y, w, h, *sizes[img]):
                dropped["outside_image"] += 1
            else:
                by_image[img].append((x, y, x + w, y + h, cat, int(bool(ann.get("iscrowd", 0)))))
        return by_image, {"dropped_annotations": dropped}

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
