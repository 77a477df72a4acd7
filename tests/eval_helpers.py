"""Helpers of the evaluation/export/inference tests: small configurations, checkpoints, a perfect predictor."""
import contextlib
import json
import os

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from conftest import SMALL, SYNTHETIC_CLASSES, make_config
from conftest import SMALL_RES as RES
from conftest import override_args as argv  # noqa: F401  (imported from here by the entry-script tests)

# Fixed-resolution evaluation at RES: the setting the 310 chain reproduces.
FIXED = dict(SMALL, **{"eval_config.keep_res": False, "dataset_config.input_res_test": RES,
                       "export_config.input_res": RES})


@contextlib.contextmanager
def pynative():
    """PyNative mode inside the block: a reference network's score maps (tests/agreement.py, read at ties)
    without compiling a graph per input shape (seconds each on a loaded machine)."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)


def randomise_weights(net, seed=0, offset_std=0.1):
    """Random BatchNorm statistics, offset-conv weights (offsets of several pixels) and heatmap head.

    The heatmap head's default initialisation gives an almost flat heatmap, where neighbours
    differ by an ulp and peak extraction depends on rounding; larger weights separate them.
    """
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        if "conv_offset_mask.weight" in p.name:
            p.set_data(Tensor(rng.normal(0, offset_std, p.shape).astype(np.float32)))
        elif "conv_offset_mask.bias" in p.name:
            p.set_data(Tensor(rng.normal(0, 0.5, p.shape).astype(np.float32)))
        elif p.name.startswith("hm.") and p.name.endswith("weight"):
            p.set_data(Tensor(rng.normal(0, 0.1, p.shape).astype(np.float32)))
        elif p.name.endswith(("moving_mean", "beta")):
            p.set_data(Tensor(rng.normal(0, 0.1, p.shape).astype(np.float32)))
        elif p.name.endswith(("moving_variance", "gamma")):
            p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))


def small_checkpoint(path, num_classes=SYNTHETIC_CLASSES, seed=1, wh_bias=(8.0, 8.0), hm_bias=None, overrides=None,
                     randomise=False):
    """Random-weight small network saved to ``path``.

    ``wh_bias`` gives every detection a box of that size (output-map pixels) so that random
    weights still produce some true positives (non-zero, deterministic AP); ``hm_bias``
    sets the heatmap bias (a large negative value: no detection scores above 0);
    ``randomise`` applies ``randomise_weights`` (deformable offsets of several pixels, a
    heatmap without near-ties).
    """
    from src.centernet_det import CenterNetDet
    cfg = make_config(dict(SMALL, **{"dataset_config.num_classes": num_classes}, **(overrides or {})))
    ms.set_seed(seed)
    net = CenterNetDet(cfg.net_config, num_classes)
    if randomise:
        randomise_weights(net, seed)
    params = {p.name: p for p in net.get_parameters()}
    if wh_bias is not None:
        params["wh.2.bias"].set_data(Tensor(np.array(wh_bias, np.float32)))
    if hm_bias is not None:
        params["hm.2.bias"].set_data(Tensor(np.full(num_classes, hm_bias, np.float32)))
    ms.save_checkpoint(net, str(path))
    return str(path)


class _Heads(nn.Cell):
    """Stands in for CenterNetDet: returns the heads stored on it (PyNative), mirrored for a flip batch."""

    def __init__(self):
        super().__init__()
        self.heads = None

    def construct(self, x):
        heads = [Tensor(h[None]) for h in self.heads]
        if x.shape[0] == 2:
            heads = [ops.concat((h, ops.flip(h, (3,))), 0) for h in heads]
        return tuple(heads)


def perfect_heads(annotations, meta, category_ids):
    """Heatmap logits, sizes and offsets that a perfect network would output for one input.

    Boxes go from original pixels to the resized image (x scale) and through the forward
    pre-processing transform (meta's c, s) onto the output map, as training targets do.
    """
    from src.image import draw_umich_gaussian, gaussian_radius, get_affine_transform, transform_boxes
    out_h, out_w = meta["out_height"], meta["out_width"]
    hm = np.zeros((len(category_ids), out_h, out_w), np.float32)
    wh = np.zeros((2, out_h, out_w), np.float32)
    reg = np.zeros((2, out_h, out_w), np.float32)
    trans = get_affine_transform(np.array(meta["c"], np.float32), np.array(meta["s"], np.float32), 0,
                                 [out_w, out_h])
    index = {c: j for j, c in enumerate(category_ids)}
    for ann in annotations:
        if ann.get("iscrowd"):
            continue
        x, y, w, h = ann["bbox"]
        box = transform_boxes(np.array([x, y, x + w, y + h], np.float32) * meta["scale"], trans)[0]
        bw, bh = box[2] - box[0], box[3] - box[1]
        ct = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)
        ct_int = ct.astype(np.int32)
        radius = max(0, int(gaussian_radius((np.ceil(bh), np.ceil(bw)))))
        draw_umich_gaussian(hm[index[ann["category_id"]]], ct_int, radius)
        wh[:, ct_int[1], ct_int[0]] = (bw, bh)
        reg[:, ct_int[1], ct_int[0]] = ct - ct_int
    p = np.clip(hm, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).astype(np.float32), wh, reg


def perfect_predictor(data, flip_test, K=100):
    """predict(input, meta) for detect_images: ground-truth heads decoded by the real CenterNetDetEval.

    Runs in PyNative mode (the caller sets it). The heads depend only on the annotations of
    meta's image_id and on meta's geometry, so the whole coordinate chain (pre-processing
    geometry, decode, flip averaging, post-processing, COCO ids) is what gets scored.
    """
    from src.decode import CenterNetDetEval
    heads = _Heads()
    cell = CenterNetDetEval(heads, K, cat_spec_wh=False, reg_offset=True, flip_test=flip_test)
    cell.set_train(False)

    def predict(inp, meta):
        assert inp.shape[2:] == (meta["out_height"] * 4, meta["out_width"] * 4)
        heads.heads = perfect_heads(data.annotations_of(meta["image_id"]), meta, data.category_ids)
        return cell(Tensor(inp)).asnumpy()[0]
    return predict


def file_names(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def pseudo_ground_truth(ann_file, records, path, per_image=3):
    """A COCO json with ``ann_file``'s images and categories whose annotations are detections.

    Random-weight networks score AP 0 on the real ground truth, which makes "same AP" checks
    empty. Taking the ``per_image`` best detections of each image (boxes shifted by a few
    pixels, some with their class changed) as ground truth gives a network something between
    AP 0 and 1 to score, deterministically.
    """
    with open(ann_file, "r", encoding="utf-8") as f:
        doc = json.load(f)
    cat_ids = sorted(c["id"] for c in doc["categories"])
    annotations = []
    for image in doc["images"]:
        mine = sorted((r for r in records if r["image_id"] == image["id"]), key=lambda r: -r["score"])[:per_image]
        for k, rec in enumerate(mine):
            x, y, w, h = rec["bbox"]
            shift = 0.15 * (k + 1) * max(w, h)
            category = rec["category_id"] if k != 1 else cat_ids[(cat_ids.index(rec["category_id"]) + 1) % len(cat_ids)]
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": category,
                                "bbox": [x + shift, y, w, h], "area": max(w * h, 1.0), "iscrowd": 0})
    doc["annotations"] = annotations
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return str(path)
