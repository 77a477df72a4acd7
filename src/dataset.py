"""COCO -> MindRecord conversion and the CenterNet training data pipeline.

Conversion (``python src/dataset.py --coco_data_dir D --mindrecord_dir M``) stores, per
image, the original encoded bytes, ``image_id``, ``bboxes`` (n, 4) float32 x1y1x2y2 pixels,
``category_id`` (n,) int32 contiguous class indices and ``iscrowd`` (n,) int32, plus a
sidecar ``<prefix>.meta.json`` describing the classes.

Training (``create_train_dataset``) reproduces the official ctdet preprocessing with a
sample order and augmentation randomness that depend only on (seed, rank, sample
position), so a run can resume bit-for-bit and ranks read disjoint samples.
"""
import collections
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src import image as im  # noqa: E402  (after the sys.path fix of the __main__ block)

LOGGER = logging.getLogger(__name__)

DEFAULT_PREFIX = "coco_det.train.mind"
META_SUFFIX = ".meta.json"
SCHEMA = {
    "image": {"type": "bytes"},
    "image_id": {"type": "int64"},
    "bboxes": {"type": "float32", "shape": [-1, 4]},
    "category_id": {"type": "int32", "shape": [-1]},
    "iscrowd": {"type": "int32", "shape": [-1]},
}
SOURCE_COLUMNS = ["image", "image_id", "bboxes", "category_id", "iscrowd", "position"]
CHUNK_IMAGES = 32            # images per worker task and per FileWriter call
CHUNK_BYTES = 64 << 20       # flush rows to the writer past this many image bytes
MSRA_SIGMA = 4               # official --hm_gauss default: heatmap sigma with mse_loss
RAND_CROP_SCALES = np.arange(0.6, 1.4, 0.1)  # official: 0.6 ... 1.3
RAND_CROP_BORDER = 128
PREFETCH_BYTES = 512 << 20   # queued batches per pipeline stage (see _limit_prefetch)


# ----------------------------------------------------------------------------- conversion

def load_coco(ann_file):
    """Parse a COCO json: (categories sorted by id, images sorted by id, {image_id: [ann]}, stats).

    Raises FileNotFoundError / ValueError naming ``ann_file`` for a missing or malformed file.
    """
    if not os.path.isfile(ann_file):
        raise FileNotFoundError("annotation file not found: %s" % ann_file)
    try:
        with open(ann_file, "r", encoding="utf-8") as f:
            doc = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError("malformed json in %s: %s" % (ann_file, err)) from err
    if not isinstance(doc, dict) or any(not isinstance(doc.get(k), list) for k in ("images", "categories")):
        raise ValueError("%s is not a COCO detection file: it needs 'images' and 'categories' lists" % ann_file)
    try:
        categories = sorted(({"id": int(c["id"]), "name": str(c.get("name", c["id"]))} for c in doc["categories"]),
                            key=lambda c: c["id"])
        images = sorted(({"id": int(i["id"]), "file_name": str(i["file_name"])} for i in doc["images"]),
                        key=lambda i: i["id"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError("%s: an image or category entry lacks a valid field: %r" % (ann_file, err)) from err
    if not categories:
        raise ValueError("%s has no categories" % ann_file)
    for kind, entries in (("category", categories), ("image", images)):
        ids = [e["id"] for e in entries]
        if len(set(ids)) != len(ids):
            raise ValueError("%s: duplicate %s ids" % (ann_file, kind))
    anns_by_image, stats = _group_annotations(doc.get("annotations", []), {i["id"] for i in images},
                                              {c["id"] for c in categories}, ann_file)
    return categories, images, anns_by_image, stats


def _group_annotations(annotations, image_ids, category_ids, ann_file):
    """Group valid annotations by image; count those dropped (unknown image, w or h <= 0)."""
    by_image = collections.defaultdict(list)
    dropped = collections.Counter()
    for ann in annotations:
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            cat, img = int(ann["category_id"]), int(ann["image_id"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError("%s: annotation %r has no valid bbox/category_id/image_id: %r"
                             % (ann_file, ann.get("id") if isinstance(ann, dict) else ann, err)) from err
        if cat not in category_ids:
            raise ValueError("%s: annotation %r uses category_id %d, not in 'categories'"
                             % (ann_file, ann.get("id"), cat))
        if img not in image_ids:
            dropped["unknown_image"] += 1
        elif w <= 0 or h <= 0:
            dropped["non_positive_size"] += 1
        else:
            by_image[img].append((x, y, x + w, y + h, cat, int(bool(ann.get("iscrowd", 0)))))
    return by_image, {"dropped_annotations": dict(dropped)}


def read_and_check(path):
    """Read an image file and check that cv2 can decode it: (bytes, None) or (None, reason)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, "missing"
    except OSError as err:
        return None, "unreadable (%s)" % err.strerror
    if not data:
        return None, "empty file"
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        return None, "undecodable"
    return data, None


def _read_chunk(paths):
    return [read_and_check(p) for p in paths]


def _chunked_results(paths, pool, workers):
    """Yield read_and_check results in order; at most 2 * workers chunks in flight (flat memory)."""
    chunks = [paths[i:i + CHUNK_IMAGES] for i in range(0, len(paths), CHUNK_IMAGES)]
    if pool is None:
        for chunk in chunks:
            yield from _read_chunk(chunk)
        return
    pending = collections.deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_read_chunk, (chunk,)))
        if len(pending) >= 2 * workers:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()


def _make_row(image, data, objects, cat_index):
    boxes = np.array([o[:4] for o in objects], np.float32).reshape(-1, 4)
    return {"image": data, "image_id": image["id"], "bboxes": boxes,
            "category_id": np.array([cat_index[o[4]] for o in objects], np.int32),
            "iscrowd": np.array([o[5] for o in objects], np.int32)}


def existing_outputs(mindrecord_dir, prefix):
    """Paths in ``mindrecord_dir`` that belong to the dataset ``prefix`` (shards, .db, meta)."""
    if not os.path.isdir(mindrecord_dir):
        return []
    pattern = re.compile(r"^%s(\d+)?(\.db)?$" % re.escape(prefix))
    return sorted(os.path.join(mindrecord_dir, n) for n in os.listdir(mindrecord_dir)
                  if pattern.match(n) or n == prefix + META_SUFFIX)


def _write_shards(tmp_dir, prefix, shards, images, anns_by_image, cat_index, image_dir, workers):
    """Write all rows into ``tmp_dir``; returns (num_written, skipped list, num_objects)."""
    from mindspore.mindrecord import FileWriter
    from tqdm import tqdm
    writer = FileWriter(os.path.join(tmp_dir, prefix), shard_num=shards, overwrite=True)
    writer.add_schema(SCHEMA, "centernet coco detection")
    writer.add_index(["image_id"])
    paths = [os.path.join(image_dir, i["file_name"]) for i in images]
    rows, row_bytes, written, objects, skipped = [], 0, 0, 0, []
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        with tqdm(total=len(images), unit="img", desc="convert", disable=None, mininterval=1.0) as bar:
            for image, path, (data, reason) in zip(images, paths, _chunked_results(paths, pool, workers)):
                bar.update(1)
                if data is None:
                    LOGGER.warning("skipping image %d (%s): %s", image["id"], path, reason)
                    skipped.append({"image_id": image["id"], "file": path, "reason": reason})
                    continue
                objs = anns_by_image.get(image["id"], [])
                rows.append(_make_row(image, data, objs, cat_index))
                row_bytes += len(data)
                objects += len(objs)
                if len(rows) >= CHUNK_IMAGES or row_bytes >= CHUNK_BYTES:
                    writer.write_raw_data(rows)
                    written += len(rows)
                    rows, row_bytes = [], 0
    finally:
        if pool is not None:
            pool.terminate()
    if written + len(rows) == 0:
        raise RuntimeError("no readable image among the %d listed for %s" % (len(images), image_dir))
    if rows:
        writer.write_raw_data(rows)
        written += len(rows)
    writer.commit()
    return written, skipped, objects


def _publish(tmp_dir, mindrecord_dir, prefix, overwrite):
    """Move the finished files from ``tmp_dir`` into place; the meta file goes last."""
    if overwrite:
        for path in existing_outputs(mindrecord_dir, prefix):
            os.remove(path)
    meta_name = prefix + META_SUFFIX
    for name in sorted(os.listdir(tmp_dir)):
        if name != meta_name:
            os.replace(os.path.join(tmp_dir, name), os.path.join(mindrecord_dir, name))
    os.replace(os.path.join(tmp_dir, meta_name), os.path.join(mindrecord_dir, meta_name))


def _summary(prefix, shards, categories, written, objects, skipped, stats, ann_file, image_dir):
    """The conversion summary, also stored as the <prefix>.meta.json sidecar."""
    return {
        "prefix": prefix, "shards": shards,
        "files": [prefix] if shards == 1 else ["%s%d" % (prefix, i) for i in range(shards)],
        "categories": [{"index": k, "id": c["id"], "name": c["name"]} for k, c in enumerate(categories)],
        "num_classes": len(categories), "num_images": written, "num_objects": objects,
        "num_skipped": len(skipped), "skipped_reasons": dict(collections.Counter(s["reason"] for s in skipped)),
        "skipped": skipped, "num_dropped_annotations": sum(stats["dropped_annotations"].values()),
        "dropped_annotations": stats["dropped_annotations"],
        "ann_file": os.path.abspath(ann_file), "image_dir": os.path.abspath(image_dir),
    }


def coco_to_mindrecord(ann_file, image_dir, mindrecord_dir, prefix=DEFAULT_PREFIX, shards=8, workers=0,
                       overwrite=False):
    """Convert a COCO-format detection set to MindRecord shards; returns a summary dict.

    Unreadable/missing/undecodable images are skipped and counted (``skipped``), boxes with
    w or h <= 0 dropped and counted. Output appears atomically: rows are written in a
    temporary folder inside ``mindrecord_dir`` and moved into place when complete.
    """
    start = time.time()
    if not os.path.isdir(image_dir):
        raise FileNotFoundError("image folder not found: %s" % image_dir)
    categories, images, anns_by_image, stats = load_coco(ann_file)
    if not images:
        raise ValueError("%s lists no images" % ann_file)
    clash = existing_outputs(mindrecord_dir, prefix)
    if clash and not overwrite:
        raise FileExistsError("MindRecord dataset %r already exists in %s (%s); pass overwrite to replace it"
                              % (prefix, mindrecord_dir, clash[0]))
    shards = max(1, min(int(shards), len(images)))
    workers = int(workers) or os.cpu_count() or 1
    cat_index = {c["id"]: k for k, c in enumerate(categories)}
    created = not os.path.isdir(mindrecord_dir)
    os.makedirs(mindrecord_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-%s-" % prefix, dir=mindrecord_dir)
    try:
        written, skipped, objects = _write_shards(tmp_dir, prefix, shards, images, anns_by_image, cat_index,
                                                  image_dir, workers)
        summary = _summary(prefix, shards, categories, written, objects, skipped, stats, ann_file, image_dir)
        with open(os.path.join(tmp_dir, prefix + META_SUFFIX), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        _publish(tmp_dir, mindrecord_dir, prefix, overwrite)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if created and not os.listdir(mindrecord_dir):
            os.rmdir(mindrecord_dir)
    seconds = time.time() - start
    summary.update(mindrecord_dir=os.path.abspath(mindrecord_dir), seconds=round(seconds, 3),
                   images_per_second=round(written / max(seconds, 1e-9), 1))
    LOGGER.info("wrote %d images (%d objects, %d skipped, %d annotations dropped) in %d shards to %s in %.1f s",
                written, objects, len(skipped), summary["num_dropped_annotations"], shards, mindrecord_dir, seconds)
    return summary


def read_meta(mindrecord_dir, prefix=DEFAULT_PREFIX):
    """The sidecar meta dict of a converted dataset, or None when the dataset has none."""
    path = os.path.join(mindrecord_dir, prefix + META_SUFFIX)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except ValueError as err:
        raise ValueError("malformed MindRecord meta file %s: %s" % (path, err)) from err


def mindrecord_files(mindrecord_dir, prefix=DEFAULT_PREFIX):
    """Ordered shard paths of dataset ``prefix`` in ``mindrecord_dir`` (from the meta file if any)."""
    if not os.path.isdir(mindrecord_dir):
        raise FileNotFoundError("MindRecord folder not found: %s" % mindrecord_dir)
    meta = read_meta(mindrecord_dir, prefix)
    if meta is not None:
        files = [os.path.join(mindrecord_dir, n) for n in meta["files"]]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise FileNotFoundError("MindRecord shard %s listed in %s is missing"
                                    % (missing[0], os.path.join(mindrecord_dir, prefix + META_SUFFIX)))
        return files
    pattern = re.compile(r"^%s(\d*)$" % re.escape(prefix))
    found = sorted(((int(m.group(1) or -1), n) for n in os.listdir(mindrecord_dir)
                    for m in [pattern.match(n)] if m))
    if not found:
        raise FileNotFoundError("no MindRecord files with prefix %r in %s (convert COCO with src/dataset.py first)"
                                % (prefix, mindrecord_dir))
    return [os.path.join(mindrecord_dir, n) for _, n in found]


def dataset_size(mindrecord_dir, prefix=DEFAULT_PREFIX):
    """Number of rows (images) of a converted dataset."""
    import mindspore.dataset as ds
    files = mindrecord_files(mindrecord_dir, prefix)
    return ds.MindDataset(files, columns_list=["image_id"], shuffle=False).get_dataset_size()


# ----------------------------------------------------------------------------- training targets

def train_columns(net_config):
    """Column names (order is the trainer contract) produced by the training pipeline."""
    columns = ["image", "hm", "reg_mask", "ind"]
    if net_config.dense_wh:
        columns += ["dense_wh", "dense_wh_mask"]
    elif net_config.cat_spec_wh:
        columns += ["cat_spec_wh", "cat_spec_mask"]
    else:
        columns += ["wh"]
    if net_config.reg_offset:
        columns.append("reg")
    return columns


Aug = collections.namedtuple("Aug", ["center", "scale", "rot", "flipped", "color"])
Aug.__doc__ = """Random draws of one training sample: affine centre (x, y) and scale in the
(possibly mirrored) source image, rotation in degrees, horizontal flip, ColorAugParams or None."""


class TrainTransform:
    """Picklable per-sample training preprocessing: encoded image + boxes -> input and targets.

    Built once from the Config; holds only plain numbers and numpy arrays. Randomness of
    sample ``position`` comes from default_rng([seed, rank, position]) alone.
    """

    def __init__(self, cfg, rank=0):
        d, n = cfg.dataset_config, cfg.net_config
        self.in_h, self.in_w = (int(v) for v in d.input_res_train)
        self.out_h, self.out_w = (int(v) for v in d.output_res)
        self.num_classes, self.max_objs = int(d.num_classes), int(d.max_objs)
        self.rand_crop, self.shift, self.scale = bool(d.rand_crop), float(d.shift), float(d.scale)
        self.aug_rot, self.rotate, self.flip_prop = float(d.aug_rot), float(d.rotate), float(d.flip_prop)
        self.color_aug = bool(d.color_aug)
        self.mean, self.std = np.array(d.mean, np.float64), np.array(d.std, np.float64)
        self.eig_val, self.eig_vec = np.array(d.eig_val, np.float64), np.array(d.eig_vec, np.float64)
        self.dense_wh, self.cat_spec_wh = bool(n.dense_wh), bool(n.cat_spec_wh)
        self.mse_loss = bool(n.mse_loss)
        self.columns = train_columns(n)
        self.seed, self.rank = int(cfg.seed), int(rank)
        if self.seed < 0:
            raise ValueError("seed must be >= 0 for the data pipeline, got %d" % self.seed)
        self.plain_matrix = im.color_normalize_matrix(None, None, None, None, self.mean, self.std)
        self._kernels = {}
        self._threads_set = False

    def rng(self, position):
        return np.random.default_rng([self.seed, self.rank, int(position)])

    def sample_aug(self, rng, height, width):
        """Draw centre/scale/rotation/flip/colour for an image of ``height`` x ``width`` (official order)."""
        c = np.array([width / 2.0, height / 2.0], np.float32)
        s = float(max(height, width))
        if self.rand_crop:
            s *= float(rng.choice(RAND_CROP_SCALES))
            w_border = im.get_border(RAND_CROP_BORDER, width)
            h_border = im.get_border(RAND_CROP_BORDER, height)
            c[0] = rng.integers(w_border, width - w_border)
            c[1] = rng.integers(h_border, height - h_border)
        else:
            sf, cf = self.scale, self.shift
            c[0] += s * np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf)
            c[1] += s * np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf)
            s *= float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
        rot = 0.0
        if rng.random() < self.aug_rot:
            rot = float(np.clip(rng.standard_normal() * self.rotate, -2 * self.rotate, 2 * self.rotate))
        flipped = bool(rng.random() < self.flip_prop)
        if flipped:
            c[0] = width - c[0] - 1  # centre in the mirrored image
        color = im.sample_color_aug(rng) if self.color_aug else None
        return Aug(c, s, rot, flipped, color)

    def warp_image(self, img, aug):
        """(h, w, 3) uint8 BGR -> (3, in_h, in_w) float32 network input (colour aug + normalisation)."""
        if aug.flipped:
            img = cv2.flip(img, 1)
        trans = im.get_affine_transform(aug.center, aug.scale, aug.rot, (self.in_w, self.in_h))
        inp = cv2.warpAffine(img, trans, (self.in_w, self.in_h), flags=cv2.INTER_LINEAR)
        if aug.color is None:
            matrix = self.plain_matrix
        else:
            matrix = im.color_normalize_matrix(aug.color, cv2.mean(inp)[:3], self.eig_val, self.eig_vec,
                                               self.mean, self.std)
        return im.apply_pixel_matrix(inp, matrix)

    def output_boxes(self, boxes, aug, width):
        """Source x1y1x2y2 boxes -> boxes at output resolution, clipped to the heatmap."""
        boxes = np.array(boxes, np.float32).reshape(-1, 4)
        if aug.flipped:
            boxes[:, [0, 2]] = width - boxes[:, [2, 0]] - 1  # pixel i -> width - 1 - i
        trans = im.get_affine_transform(aug.center, aug.scale, aug.rot, (self.out_w, self.out_h))
        out = im.transform_boxes(boxes, trans)
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, self.out_w - 1)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, self.out_h - 1)
        return out

    def _kernel(self, radius):
        kernel = self._kernels.get(radius)
        if kernel is None:
            kernel = self._kernels[radius] = im.umich_kernel(radius)
        return kernel

    def _draw(self, heatmap, ct_int, radius):
        if self.mse_loss:
            im.draw_msra_gaussian(heatmap, ct_int, MSRA_SIGMA)
        else:
            im.draw_umich_gaussian(heatmap, ct_int, radius, kernel=self._kernel(radius))

    def make_targets(self, boxes, classes):
        """Targets from output-resolution boxes (n, 4) and class indices (n,) of non-crowd objects.

        Slots are filled by surviving objects in order, up to max_objs. Returns a dict of
        the column arrays (see train_columns for which are emitted).
        """
        oh, ow, m, nc = self.out_h, self.out_w, self.max_objs, self.num_classes
        t = {"hm": np.zeros((nc, oh, ow), np.float32), "reg_mask": np.zeros(m, np.float32),
             "ind": np.zeros(m, np.int32), "wh": np.zeros((m, 2), np.float32), "reg": np.zeros((m, 2), np.float32)}
        if self.dense_wh:
            t["dense_wh"] = np.zeros((2, oh, ow), np.float32)
            hm_max = np.zeros((oh, ow), np.float32)  # == hm.max(axis=0), kept incrementally
        if self.cat_spec_wh:
            t["cat_spec_wh"] = np.zeros((m, 2 * nc), np.float32)
            t["cat_spec_mask"] = np.zeros((m, 2 * nc), np.float32)
        k = 0
        for box, cls in zip(boxes, classes):
            h, w = float(box[3] - box[1]), float(box[2] - box[0])
            if h <= 0 or w <= 0 or k >= m:
                continue
            radius = max(0, int(im.gaussian_radius((math.ceil(h), math.ceil(w)))))
            ct = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)
            ct_int = ct.astype(np.int32)
            self._draw(t["hm"][cls], ct_int, radius)
            t["wh"][k] = w, h
            t["ind"][k] = ct_int[1] * ow + ct_int[0]
            t["reg"][k] = ct - ct_int
            t["reg_mask"][k] = 1
            if self.cat_spec_wh:
                t["cat_spec_wh"][k, 2 * cls:2 * cls + 2] = w, h
                t["cat_spec_mask"][k, 2 * cls:2 * cls + 2] = 1
            if self.dense_wh:
                dense_radius = MSRA_SIGMA if self.mse_loss else radius
                self._draw(hm_max, ct_int, radius)
                im.draw_dense_reg(t["dense_wh"], hm_max, ct_int, (w, h), dense_radius,
                                  kernel=self._kernel(dense_radius))
            k += 1
        if self.dense_wh:
            t["dense_wh_mask"] = np.stack([hm_max, hm_max])
        return t

    def process(self, img, boxes, classes, iscrowd, aug):
        """Decoded image + source annotations + Aug -> tuple of arrays in train_columns order."""
        height, width = img.shape[:2]
        inp = self.warp_image(img, aug)
        keep = np.asarray(iscrowd).reshape(-1) == 0
        out_boxes = self.output_boxes(np.asarray(boxes).reshape(-1, 4)[keep], aug, width)
        targets = self.make_targets(out_boxes, np.asarray(classes).reshape(-1)[keep].astype(np.int64))
        targets["image"] = inp
        return tuple(targets[c] for c in self.columns)

    def __call__(self, image, image_id, bboxes, category_id, iscrowd, position):
        if not self._threads_set:
            cv2.setNumThreads(1)  # one pipeline worker = one core
            self._threads_set = True
        img = cv2.imdecode(_as_uint8(image), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot decode the image of image_id %d" % int(image_id))
        boxes, classes, crowd = _as_objects(bboxes, category_id, iscrowd)
        if classes.size and classes.max() >= self.num_classes:
            raise ValueError("image_id %d has class index %d >= dataset_config.num_classes %d"
                             % (int(image_id), int(classes.max()), self.num_classes))
        aug = self.sample_aug(self.rng(position), *img.shape[:2])
        return self.process(img, boxes, classes, crowd, aug)


def _as_uint8(image):
    """The encoded image column as a flat uint8 array (MindSpore yields uint8 or a bytes scalar)."""
    image = np.asarray(image)
    if image.dtype.kind == "S":
        return np.frombuffer(image.tobytes(), np.uint8)
    return image.reshape(-1).view(np.uint8)


def _as_objects(bboxes, category_id, iscrowd):
    """Undo MindRecord's shape () for empty arrays: -> (n, 4) float32, (n,) int64, (n,) int32."""
    bboxes, category_id, iscrowd = (np.asarray(a) for a in (bboxes, category_id, iscrowd))
    if bboxes.ndim == 0 or category_id.ndim == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int32)
    return bboxes.reshape(-1, 4).astype(np.float32), category_id.reshape(-1).astype(np.int64), \
        iscrowd.reshape(-1).astype(np.int32)


# ----------------------------------------------------------------------------- sample order

class SamplePlan:
    """Which row each sample position of one rank reads.

    Epoch e's order is default_rng([seed, e]).permutation(num_rows) (arange without
    shuffle); rank r takes perm[r::group_size][:num_rows // group_size] and each epoch uses
    its first steps_per_epoch * batch_size entries. Position p of the run is entry
    p % epoch_len of epoch p // epoch_len.
    """

    def __init__(self, num_rows, batch_size, seed, rank=0, group_size=1, shuffle=True):
        if not 0 <= rank < group_size:
            raise ValueError("rank %d outside group of %d" % (rank, group_size))
        self.num_rows, self.batch_size, self.seed = int(num_rows), int(batch_size), int(seed)
        self.rank, self.group_size, self.shuffle = int(rank), int(group_size), bool(shuffle)
        self.steps_per_epoch = (self.num_rows // self.group_size) // self.batch_size
        self.epoch_len = self.steps_per_epoch * self.batch_size

    def epoch_indices(self, epoch):
        """(epoch_len,) int64 row indices read by this rank in ``epoch``."""
        order = (np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_rows) if self.shuffle
                 else np.arange(self.num_rows))
        return order[self.rank::self.group_size][:self.num_rows // self.group_size][:self.epoch_len]

    def segments(self, start, count):
        """Yield (first position, row indices) per epoch covering positions [start, start + count)."""
        pos, end = int(start), int(start) + int(count)
        while pos < end:
            epoch, offset = divmod(pos, self.epoch_len)
            take = min(self.epoch_len - offset, end - pos)
            yield pos, self.epoch_indices(epoch)[offset:offset + take]
            pos += take

    def indices(self, start, count):
        """All row indices of positions [start, start + count) (for tests and inspection)."""
        parts = [idx for _, idx in self.segments(start, count)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class _StreamSource:
    """GeneratorDataset source: rows of the planned positions, read epoch by epoch.

    MindDataset's SubsetSampler refuses more indices than rows, so each epoch segment gets
    its own MindDataset (only one open at a time) and the position column is attached here.
    """

    def __init__(self, files, plan, start, count, reader_workers=1):
        self.files, self.plan, self.start, self.count = list(files), plan, int(start), int(count)
        self.reader_workers = reader_workers

    def __len__(self):
        return self.count

    def __iter__(self):
        import mindspore.dataset as ds
        columns = SOURCE_COLUMNS[:-1]
        for first, indices in self.plan.segments(self.start, self.count):
            reader = ds.MindDataset(self.files, columns_list=columns, sampler=ds.SubsetSampler(indices.tolist()),
                                    num_parallel_workers=self.reader_workers)
            for offset, row in enumerate(reader.create_tuple_iterator(output_numpy=True, num_epochs=1)):
                yield tuple(row) + (np.array(first + offset, np.int64),)


def create_train_dataset(cfg, mindrecord_dir, prefix, batch_size, rank=0, group_size=1, start_step=0,
                         total_steps=None, num_parallel_workers=None, do_shuffle=True):
    """Training dataset of ``total_steps`` batches starting at step ``start_step``; -> (dataset, steps_per_epoch).

    Columns: train_columns(cfg.net_config), each with a leading batch dimension.
    ``total_steps`` counts the batches produced from ``start_step`` on (resuming at step k
    of a T-step run: start_step=k, total_steps=T-k); None means the rest of the configured
    run: cfg.train_steps if > 0, else cfg.epoch_size epochs, minus ``start_step``.
    The dataset is one pass over that stream: iterate it once (num_epochs=1, or
    Model.train(1, ...)); iterating again replays the same batches.
    """
    import mindspore.dataset as ds
    files = mindrecord_files(mindrecord_dir, prefix)
    num_rows = ds.MindDataset(files, columns_list=["image_id"], shuffle=False).get_dataset_size()
    _check_classes(cfg, mindrecord_dir, prefix)
    plan = SamplePlan(num_rows, batch_size, cfg.seed, rank, group_size, do_shuffle)
    if plan.steps_per_epoch == 0:
        raise ValueError("%s holds %d images, fewer than group_size %d x batch_size %d"
                         % (mindrecord_dir, num_rows, group_size, batch_size))
    if total_steps is None:
        run = cfg.train_steps if cfg.train_steps > 0 else cfg.epoch_size * plan.steps_per_epoch
        total_steps = run - start_step
    if start_step < 0 or total_steps <= 0:
        raise ValueError("need start_step >= 0 and total_steps > 0, got %d and %d" % (start_step, total_steps))
    workers = max(1, min(num_parallel_workers or cfg.num_parallel_workers, os.cpu_count() or 1))  # MindSpore's limit
    _limit_prefetch(sample_nbytes(cfg) * batch_size)
    source = _StreamSource(files, plan, start_step * batch_size, total_steps * batch_size)
    dataset = ds.GeneratorDataset(source, column_names=SOURCE_COLUMNS, shuffle=False, num_parallel_workers=1,
                                  python_multiprocessing=False)
    columns = train_columns(cfg.net_config)
    dataset = dataset.map(TrainTransform(cfg, rank), input_columns=SOURCE_COLUMNS, output_columns=columns,
                          num_parallel_workers=workers, python_multiprocessing=True)
    dataset = dataset.project(columns).batch(batch_size, drop_remainder=True)
    LOGGER.info("training data: %d images, rank %d/%d, %d steps per epoch, steps %d..%d, %d workers",
                num_rows, rank, group_size, plan.steps_per_epoch, start_step, start_step + total_steps - 1, workers)
    return dataset, plan.steps_per_epoch


def sample_nbytes(cfg):
    """Bytes of one preprocessed training sample (all train_columns), e.g. 8.4 MB at 512x512, 80 classes."""
    d, n = cfg.dataset_config, cfg.net_config
    (in_h, in_w), (out_h, out_w) = d.input_res_train, d.output_res
    c, m = d.num_classes, d.max_objs
    per_column = {"image": 3 * in_h * in_w, "hm": c * out_h * out_w, "reg_mask": m, "ind": m, "wh": 2 * m,
                  "reg": 2 * m, "dense_wh": 2 * out_h * out_w, "dense_wh_mask": 2 * out_h * out_w,
                  "cat_spec_wh": 2 * c * m, "cat_spec_mask": 2 * c * m}
    return 4 * sum(per_column[col] for col in train_columns(n))


def _limit_prefetch(batch_nbytes):
    """Lower MindSpore's (global) per-op queue depth so queued batches stay near PREFETCH_BYTES.

    With the default depth of 16, a slow consumer lets 512x512/80-class batches of 16 pile
    up to about 4 GB; small quick-start batches keep the default.
    """
    import mindspore.dataset as ds
    depth = max(2, int(PREFETCH_BYTES // max(batch_nbytes, 1)))
    if ds.config.get_prefetch_size() > depth:
        LOGGER.info("lowering the dataset prefetch size from %d to %d (%.0f MB per batch)",
                    ds.config.get_prefetch_size(), depth, batch_nbytes / 2 ** 20)
        ds.config.set_prefetch_size(depth)


def _check_classes(cfg, mindrecord_dir, prefix):
    meta = read_meta(mindrecord_dir, prefix)
    if meta is None:
        return
    have, want = int(meta["num_classes"]), int(cfg.dataset_config.num_classes)
    if have > want:
        raise ValueError("%s has %d classes but dataset_config.num_classes is %d"
                         % (os.path.join(mindrecord_dir, prefix + META_SUFFIX), have, want))
    if have < want:
        LOGGER.warning("%s has %d classes, dataset_config.num_classes is %d", mindrecord_dir, have, want)


# ----------------------------------------------------------------------------- command line

def resolve_paths(cfg):
    """(ann_file, image_dir) from --train_ann_file/--train_image_dir or --coco_data_dir."""
    from src.model_utils.config import ConfigError
    if not cfg.mindrecord_dir:
        raise ConfigError("--mindrecord_dir is required")
    if not cfg.coco_data_dir and not (cfg.train_ann_file and cfg.train_image_dir):
        raise ConfigError("give --coco_data_dir, or both --train_ann_file and --train_image_dir")
    if cfg.coco_data_dir and not os.path.isdir(cfg.coco_data_dir):
        raise FileNotFoundError("COCO folder not found: %s" % cfg.coco_data_dir)
    ann_file = cfg.train_ann_file or os.path.join(cfg.coco_data_dir, "annotations", "instances_train2017.json")
    image_dir = cfg.train_image_dir or os.path.join(cfg.coco_data_dir, "train2017")
    return ann_file, image_dir


def run_conversion(cfg):
    """The converter's job. On ModelArts (``enable_modelarts``) the COCO paths are taken below
    ``data_path`` (an empty ``coco_data_dir`` is ``data_path`` itself) and ``mindrecord_dir`` below
    ``output_path``, which is copied to ``train_url`` afterwards."""
    from src.model_utils.moxing_adapter import local_path
    explicit = bool(cfg.train_ann_file and cfg.train_image_dir)
    cfg.coco_data_dir = local_path(cfg, cfg.coco_data_dir, "data_path", keep_empty=explicit)
    cfg.train_ann_file = local_path(cfg, cfg.train_ann_file, "data_path", keep_empty=True)
    cfg.train_image_dir = local_path(cfg, cfg.train_image_dir, "data_path", keep_empty=True)
    cfg.mindrecord_dir = local_path(cfg, cfg.mindrecord_dir, "output_path")
    ann_file, image_dir = resolve_paths(cfg)
    return coco_to_mindrecord(ann_file, image_dir, cfg.mindrecord_dir, cfg.mindrecord_prefix,
                              cfg.mindrecord_shards, cfg.convert_workers, cfg.overwrite)


def main(argv=None):
    from src.model_utils.config import ConfigError, get_config
    from src.model_utils.moxing_adapter import moxing_wrapper
    try:
        cfg = get_config(argv, script="src/dataset.py")
        logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        summary = moxing_wrapper(cfg)(run_conversion)(cfg)
    except (ConfigError, OSError, ValueError, RuntimeError) as err:
        logging.basicConfig(format="%(levelname)s: %(message)s")
        LOGGER.error("%s", err)
        return 1
    print("converted %d images (%d skipped: %s), %d objects, %d classes -> %s/%s* (%d shards), %.1f images/s"
          % (summary["num_images"], summary["num_skipped"], summary["skipped_reasons"] or "none",
             summary["num_objects"], summary["num_classes"], summary["mindrecord_dir"], summary["prefix"],
             summary["shards"], summary["images_per_second"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
