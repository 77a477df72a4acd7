"""Test-time inference: the eval network, a shape-aware runner and the per-image detection loop.

The loop (``detect_images``) reads and pre-processes images in a background thread (cv2
releases the GIL; its own parallelism is limited to one thread meanwhile) while the network
runs, so decoding and resizing overlap the forward pass; post-processing (affine
back-mapping, compiled soft-NMS) is cheap and runs inline.

Graph mode compiles the network once per input shape. With ``keep_res`` every image size
is a new shape, so the loop visits the images grouped by their expected input shape (from
the json's width/height) and ``Detector`` keeps only a few compiled graphs alive: each shape
is compiled once and memory stays flat however many sizes the data set has.
"""
import collections
import gc
import logging
import sys
import time

import cv2
import numpy as np
import mindspore as ms
from mindspore import Tensor

from .bn_fold import fold_batch_norm
from .centernet_det import CenterNetDet
from .decode import CenterNetDetEval
from .image import input_geometry, preprocess_test_image, read_image
from .post_process import coco_records, post_process_image
from .prefetch import Prefetcher
from .soft_nms import SoftNMS
from .utils import CheckpointError, HEAD_PREFIXES, load_network_weights, read_checkpoint

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- network

def checkpoint_classes(path):
    """Number of classes of the heatmap head stored in a checkpoint (None when it has none)."""
    saved = read_checkpoint(path)
    biases = sorted(n for n in saved if n.startswith("hm.") and n.endswith(".bias"))
    return int(saved[biases[-1]].shape[0]) if biases else None


def load_eval_weights(network, path, num_classes, weights="auto"):
    """Load ``path`` into ``network``; a checkpoint for another class count, or one that leaves a
    parameter uninitialised, is a clear error.

    ``weights``: the EMA or raw weights of a training checkpoint (ema | raw | auto, the key eval_weights).
    """
    try:
        return load_network_weights(network, path, filter_weight=False, complete=True, weights=weights)
    except CheckpointError as err:
        if not any(p in str(err) for p in HEAD_PREFIXES):
            raise
        have = checkpoint_classes(path)
        if have is not None and have != num_classes:
            raise CheckpointError("checkpoint %s was trained for %d classes (its heatmap head hm.* has %d outputs) "
                                  "but the network is built for dataset_config.num_classes=%d: %s"
                                  % (path, have, have, num_classes, err)) from err
        raise


def build_eval_network(cfg, num_classes, checkpoint=None, flip_test=None):
    """CenterNetDetEval(CenterNetDet) in inference mode, weights from ``checkpoint`` when given."""
    net_cfg = cfg.net_config
    network = CenterNetDet(net_cfg, num_classes)
    if checkpoint:
        load_eval_weights(network, checkpoint, num_classes, cfg.eval_weights)
    fold_batch_norm(network, cfg.eval_config.fold_bn)
    flip = cfg.flip_test if flip_test is None else flip_test
    net = CenterNetDetEval(network, cfg.eval_config.K, net_cfg.cat_spec_wh, net_cfg.reg_offset, flip)
    net.set_train(False)
    return net


class Detector:
    """(1, 3, H, W) float32 input -> (K, 6) detections, timing every call.

    In graph mode each input shape gets its own shallow copy of the eval cell (sharing the
    weights), compiled on first use; at most ``max_graphs`` are kept (least recently used
    dropped), which frees their compiled graphs. In PyNative mode the cell runs directly.
    """

    def __init__(self, eval_net, max_graphs=2):
        self.eval_net = eval_net
        self.max_graphs = max(1, int(max_graphs))
        self.cells = collections.OrderedDict()
        self.shapes_compiled = 0
        self.compile_s = 0.0
        self.forward_s = 0.0
        self.calls = 0

    def _cell_for(self, shape):
        if ms.get_context("mode") != ms.GRAPH_MODE:
            return self.eval_net, False
        cell = self.cells.get(shape)
        if cell is not None:
            self.cells.move_to_end(shape)
            return cell, False
        while len(self.cells) >= self.max_graphs:
            self.cells.popitem(last=False)
            gc.collect()
        net = self.eval_net
        cell = CenterNetDetEval(net.network, net.decode.K, net.decode.cat_spec_wh, net.reg_offset, net.flip_test)
        cell.set_train(False)
        self.cells[shape] = cell
        return cell, True

    def __call__(self, inp):
        shape = tuple(inp.shape)
        cell, fresh = self._cell_for(shape)
        start = time.perf_counter()
        dets = cell(Tensor(inp)).asnumpy()[0]
        elapsed = time.perf_counter() - start
        if fresh:
            self.shapes_compiled += 1
            self.compile_s += elapsed
            logger.debug("compiled the graph for input shape %s in %.1f s", shape, elapsed)
        else:
            self.forward_s += elapsed
        self.calls += 1
        return dets

    def warmup(self, shape):
        """Compile the graph of ``shape`` now (outside any timed loop); returns the seconds it took."""
        before = self.compile_s
        self(np.zeros(shape, np.float32))
        self.calls -= 1
        return self.compile_s - before


# ----------------------------------------------------------------------------- images

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
    (COCO result records sorted by image id, timing dict). A read failure raises, naming
    the file, or with ``skip_unreadable`` logs a warning and skips the image.
    """
    order = shape_order(entries, settings) if settings.keep_res else list(range(len(entries)))
    keep_image = on_image is not None

    def load(index):
        entry = entries[index]
        try:
            image = read_image(path_of(entry))
        except (OSError, ValueError) as err:
            if not skip_unreadable:
                raise
            logger.warning("skipped: %s", err)
            return index, None, None
        return index, (image if keep_image else None), settings.prepare(image)

    workers = workers or 1
    per_image = {}
    num_dets = skipped = 0
    forward_s = 0.0
    start = time.perf_counter()
    bar = _progress(len(order), desc) if progress else None
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the loader fills the network's idle time; it should not compete for every core
    try:
        with Prefetcher(load, order, workers=workers, depth=2 * workers + 2) as batches:
            for index, image, inputs in batches:
                entry = entries[index]
                if inputs is None:
                    skipped += 1
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
                per_class = post_process_image(outputs, settings.num_classes, settings.nms,
                                               settings.max_per_image)
                records = coco_records(entry["id"], per_class, category_ids)
                per_image[index] = records
                num_dets += len(records)
                if on_image is not None:
                    on_image(entry, image, per_class)
                if bar is not None:
                    bar.update(1)
    finally:
        cv2.setNumThreads(cv_threads)
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    records = [r for index in sorted(per_image, key=lambda i: entries[i]["id"]) for r in per_image[index]]
    timing = {"images": len(order), "skipped": skipped, "detections": num_dets, "wall_s": wall,
              "predict_s": forward_s,
              "images_per_s": len(order) / wall if wall > 0 else 0.0}
    return records, timing


def _progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
