"""Training targets of one sample: the official ctdet preprocessing as a picklable transform.

``TrainTransform`` turns an encoded image and its MindRecord annotations into the network
input and the target columns of ``train_columns``; every random draw of sample position p
comes from default_rng([seed, rank, p]), so a sample does not depend on which worker or
which run computes it.
"""
import collections
import math

import cv2
import numpy as np

from src import image as im
from src.data.image_file import DECODE_FLAGS

MSRA_SIGMA = 4               # official --hm_gauss default: heatmap sigma with mse_loss
RAND_CROP_SCALES = np.arange(0.6, 1.4, 0.1)  # official: 0.6 ... 1.3
RAND_CROP_BORDER = 128


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
        self.train_on_crowd, self.official_max_objs = bool(d.train_on_crowd), d.max_objs_policy == "official"
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
        boxes = np.array(boxes, np.float64).reshape(-1, 4)
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

    def make_targets(self, boxes, classes, slots=None):
        """Targets from output-resolution boxes (n, 4) and class indices (n,) of the trained objects.

        Without ``slots`` the boxes that survive (w, h > 0) fill the max_objs slots in order;
        ``slots`` (n,) gives each box its slot instead (max_objs_policy official: the index
        of its annotation, a degenerate box leaving its slot empty). Box geometry is float32
        after the float64 warp, as the official code stores it. Returns a dict of the column
        arrays (see train_columns for which are emitted).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
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
        for i, (box, cls) in enumerate(zip(boxes, classes)):
            h, w = float(box[3] - box[1]), float(box[2] - box[0])
            if slots is not None:
                k = int(slots[i])
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
            if slots is None:
                k += 1
        if self.dense_wh:
            t["dense_wh_mask"] = np.stack([hm_max, hm_max])
        return t

    def process(self, img, boxes, classes, iscrowd, aug):
        """Decoded image + source annotations + Aug -> tuple of arrays in train_columns order."""
        height, width = img.shape[:2]
        inp = self.warp_image(img, aug)
        boxes, classes = np.asarray(boxes).reshape(-1, 4), np.asarray(classes).reshape(-1).astype(np.int64)
        crowd = np.asarray(iscrowd).reshape(-1) != 0
        slots = np.arange(len(boxes))
        if self.official_max_objs:  # the first max_objs annotations, before any filtering
            boxes, classes, crowd, slots = boxes[:self.max_objs], classes[:self.max_objs], \
                crowd[:self.max_objs], slots[:self.max_objs]
        keep = np.ones(len(boxes), bool) if self.train_on_crowd else ~crowd
        out_boxes = self.output_boxes(boxes[keep], aug, width)
        targets = self.make_targets(out_boxes, classes[keep], slots[keep] if self.official_max_objs else None)
        targets["image"] = inp
        return tuple(targets[c] for c in self.columns)

    def __call__(self, image, image_id, bboxes, category_id, iscrowd, position):
        if not self._threads_set:
            cv2.setNumThreads(1)  # one pipeline worker = one core
            self._threads_set = True
        img = cv2.imdecode(_as_uint8(image), DECODE_FLAGS)  # stored orientation, as the boxes
        if img is None:
            raise ValueError("cannot decode the image of image_id %d: its bytes in the MindRecord dataset are "
                             "damaged" % int(image_id))
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


def sample_nbytes(cfg):
    """Bytes of one preprocessed training sample (all train_columns), e.g. 8.4 MB at 512x512, 80 classes."""
    d, n = cfg.dataset_config, cfg.net_config
    (in_h, in_w), (out_h, out_w) = d.input_res_train, d.output_res
    c, m = d.num_classes, d.max_objs
    per_column = {"image": 3 * in_h * in_w, "hm": c * out_h * out_w, "reg_mask": m, "ind": m, "wh": 2 * m,
                  "reg": 2 * m, "dense_wh": 2 * out_h * out_w, "dense_wh_mask": 2 * out_h * out_w,
                  "cat_spec_wh": 2 * c * m, "cat_spec_mask": 2 * c * m}
    return 4 * sum(per_column[col] for col in train_columns(n))
