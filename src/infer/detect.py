"""The per-image detection loop: test-time settings, and images -> predictor -> COCO records.

``detect_images`` reads and pre-processes images in a background thread (cv2 releases the GIL;
its own parallelism is limited to one thread meanwhile) while the predictor runs, and
post-processes (affine back-mapping, compiled soft-NMS, COCO records, drawings) in another, so
nothing but the network sits between two forward passes. The predictor is any
``predict(input, meta) -> (K, 6)``: the checkpoint's Detector (src/infer/detector.py) or an
exported model (src/deploy/runtimes.py). eval.py, tools/detect_images.py (src/infer/folder.py)
and the benchmarks run it.
"""
import collections
import concurrent.futures
import logging
import sys
import time

import cv2

from src.data.prefetch import Prefetcher
from src.data.image_file import TOO_MANY_PIXELS, ImageFileError, image_limits, read_image
from src.image import input_geometry, preprocess_test_image
from src.infer.soft_nms import SoftNMS
from src.post_process import coco_records, post_process_image

logger = logging.getLogger(__name__)

# Finished images waiting for the post-processor before the network waits for it (bounds memory).
POST_BACKLOG = 4


class EvalSettings:
    """The test-time options the loop needs, read from a configuration."""

    def __init__(self, cfg, num_classes=None, scales=None, keep_res=None):
        ev, ds = cfg.eval_config, cfg.dataset_config
        self.scales = [float(s) for s in (ev.multi_scales if scales is None else scales)]
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError("eval_config.multi_scales must be positive scales, got %r" % (self.scales,))
        self.keep_res = bool(ev.keep_res if keep_res is None else keep_res)
        self.input_res = list(ds.input_res_test)
        self.mean, self.std = ds.mean, ds.std
        self.down_ratio = cfg.net_config.down_ratio
        self.num_classes = int(ds.num_classes if num_classes is None else num_classes)
        self.soft_nms = bool(ev.SOFT_NMS)
        self.nms = SoftNMS.from_config(ev)
        self.max_per_image = int(ev.max_per_image)
        self.limits = image_limits(cfg)

    @classmethod
    def for_export(cls, cfg, dynamic_shape):
        """The settings an exported model sees at scale 1: export_config.input_res for a fixed-shape
        model (its input), the evaluation's own for a dynamic one (int8 calibration)."""
        settings = cls(cfg, scales=[1.0], keep_res=None if dynamic_shape else False)
        if not dynamic_shape:
            settings.input_res = list(cfg.export_config.input_res)
        return settings

    def prepare(self, image):
        """Network inputs of every scale: [(input, meta)]."""
        return [preprocess_test_image(image, s, self.keep_res, self.input_res, self.mean, self.std, self.down_ratio)
                for s in self.scales]

    def input_shape(self, height, width, scale=1.0):
        geo = input_geometry(height, width, scale, self.keep_res, self.input_res, self.down_ratio)
        return (1, 3, geo["inp_height"], geo["inp_width"])


def shape_order(entries, settings):
    """Indices of ``entries`` grouped by expected input shape (biggest groups first), by id inside a group.

    Entries without width/height sort last (their shape is only known once read).
    """
    def key(entry):
        if not entry.get("width") or not entry.get("height"):
            return None
        return settings.input_shape(int(entry["height"]), int(entry["width"]))
    keys = [key(e) for e in entries]
    counts = collections.Counter(keys)
    return sorted(range(len(entries)), key=lambda i: (keys[i] is None, -counts[keys[i]], str(keys[i]), i))


def detect_images(entries, path_of, predict, settings, category_ids, on_image=None, workers=None,
                  progress=True, desc="eval", skip_unreadable=False):
    """Detect every image of ``entries`` (dicts with at least id and file_name).

    ``predict(input, meta)`` returns the (K, 6) output-map detections of one input; meta
    holds c, s, out sizes, scale, image_id and file_name. ``on_image(entry, image,
    per_class)`` (optional) sees every image with its final detections (drawing). Returns
    (COCO result records sorted by image id, timing dict). Every image is read through
    src/data/image_file.py (regular files, ``settings.limits``, stored orientation). An image
    over dataset_config.max_image_pixels is skipped with a warning; any other read failure
    raises, naming the file, or with ``skip_unreadable`` is skipped with a warning too.
    ``timing["skipped_ids"]`` lists the skipped images. An entry whose json width/height
    differs from the image read is warned about and counted (``timing["size_mismatch"]``):
    its annotations describe another picture.

    Three threads share the work: a reader decodes and pre-processes images ahead, this
    thread only calls ``predict``, and a post-processor maps, suppresses, records and draws
    the finished images (a few images behind at most), so the forward passes follow each
    other. Timing: ``predict_s`` (inside ``predict``), ``input_wait_s`` and ``post_wait_s``
    (this thread waiting for the reader or for a post-processing backlog), ``post_s`` (the
    post-processor's busy time).
    """
    order = shape_order(entries, settings) if settings.keep_res else list(range(len(entries)))
    keep_image = on_image is not None

    mismatched = []

    def load(index):
        entry = entries[index]
        path = path_of(entry)
        try:
            image = read_image(path, settings.limits)
        except (OSError, ValueError) as err:
            over = isinstance(err, ImageFileError) and err.reason == TOO_MANY_PIXELS
            if not (skip_unreadable or over):
                raise
            logger.warning("skipped: %s", err)
            return index, None, None
        height, width = image.shape[:2]
        listed = (entry.get("width"), entry.get("height"))
        if all(listed) and (int(listed[0]), int(listed[1])) != (width, height):
            mismatched.append(entry["id"])
            logger.warning("%s is %dx%d but the annotation file gives %sx%s (image id %d): its boxes describe "
                           "another picture; fix the json's width/height or the image", path, width, height,
                           entry["width"], entry["height"], entry["id"])
        return index, (image if keep_image else None), settings.prepare(image)

    per_image = {}
    post_s = [0.0]
    bar = _progress(len(order), desc) if progress else None

    def finish(index, image, outputs):
        t0 = time.perf_counter()
        entry = entries[index]
        per_class = post_process_image(outputs, settings.num_classes, settings.nms, settings.max_per_image)
        per_image[index] = coco_records(entry["id"], per_class, category_ids)
        if on_image is not None:
            on_image(entry, image, per_class)
        post_s[0] += time.perf_counter() - t0
        if bar is not None:
            bar.update(1)

    workers = workers or 1
    skipped = []
    forward_s = input_wait_s = post_wait_s = 0.0
    backlog = collections.deque()
    start = time.perf_counter()
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the loader fills the network's idle time; it should not compete for every core
    post = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="postprocess")
    try:
        with Prefetcher(load, order, workers=workers, depth=2 * workers + 2) as batches:
            loaded = iter(batches)
            while True:
                t0 = time.perf_counter()
                item = next(loaded, None)
                input_wait_s += time.perf_counter() - t0
                if item is None:
                    break
                index, image, inputs = item
                entry = entries[index]
                if inputs is None:
                    skipped.append(entry["id"])
                    if bar is not None:
                        bar.update(1)
                    continue
                outputs = []
                for inp, meta in inputs:
                    meta.update(image_id=entry["id"], file_name=entry["file_name"])
                    t0 = time.perf_counter()
                    dets = predict(inp, meta)
                    forward_s += time.perf_counter() - t0
                    outputs.append((dets, meta, meta["scale"]))
                backlog.append(post.submit(finish, index, image, outputs))
                t0 = time.perf_counter()
                while len(backlog) > POST_BACKLOG or (backlog and backlog[0].done()):
                    backlog.popleft().result()  # a post-processing error surfaces here
                post_wait_s += time.perf_counter() - t0
        while backlog:
            backlog.popleft().result()
    finally:
        post.shutdown(wait=True, cancel_futures=True)
        cv2.setNumThreads(cv_threads)
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    records = [r for index in sorted(per_image, key=lambda i: entries[i]["id"]) for r in per_image[index]]
    timing = {"images": len(order), "skipped": len(skipped), "skipped_ids": sorted(skipped),
              "size_mismatch": len(mismatched), "detections": len(records), "wall_s": wall,
              "predict_s": forward_s, "input_wait_s": input_wait_s, "post_wait_s": post_wait_s,
              "post_s": post_s[0], "images_per_s": len(order) / wall if wall > 0 else 0.0}
    return records, timing


def _progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
