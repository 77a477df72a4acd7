"""Generate a small synthetic object-detection dataset in COCO format.

Layout written under ``out``::

    train2017/*.jpg|png   val2017/*.jpg|png
    annotations/instances_train2017.json   annotations/instances_val2017.json

Five categories differ by shape AND colour and use non-contiguous ids, like COCO.
Images have varied sizes, textured backgrounds (gradient, blotches, noise, lines) and
several shaded objects with limited overlap. Each split also holds the awkward cases a
COCO pipeline has to survive: single-channel (grayscale) JPEGs, a 4-channel RGBA PNG, an
image without objects and a crowd annotation (``iscrowd: 1`` with an uncompressed RLE).

Everything derives from ``seed``: image ``i`` of a split uses its own generator
``default_rng([seed, split, i])``, so the output is byte-identical for the same arguments
and independent of ``workers``.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

LOGGER = logging.getLogger("make_synthetic_coco")

# (id, name, BGR base colour): non-contiguous ids, distinct shape and colour per category.
CATEGORIES = (
    (3, "red_circle", (40, 40, 215)),
    (7, "green_square", (60, 190, 50)),
    (12, "blue_triangle", (210, 90, 25)),
    (20, "yellow_cross", (25, 205, 225)),
    (41, "magenta_ellipse", (195, 45, 190)),
)
SPLITS = {"train": (0, "train2017", 100000), "val": (1, "val2017", 500000)}

# Image roles by index inside a split (the first few images cover the special cases).
ROLE_CROWD, ROLE_PNG, ROLE_EMPTY, ROLE_GRAY = 1, 2, 3, 4


class Options:
    """Generation knobs; ``difficulty`` in [0, 1] scales clutter, noise, jitter and overlap."""

    def __init__(self, min_side=256, max_side=640, min_objects=1, max_objects=6,
                 min_obj=24, max_obj=160, difficulty=0.3, gray_every=10, png_every=25):
        if not 16 <= min_side <= max_side:
            raise ValueError("need 16 <= min_side <= max_side, got %d, %d" % (min_side, max_side))
        if not 0 <= min_objects <= max_objects:
            raise ValueError("need 0 <= min_objects <= max_objects, got %d, %d" % (min_objects, max_objects))
        if not 4 <= min_obj <= max_obj:
            raise ValueError("need 4 <= min_obj <= max_obj, got %d, %d" % (min_obj, max_obj))
        if not 0.0 <= difficulty <= 1.0:
            raise ValueError("difficulty must be in [0, 1], got %r" % difficulty)
        self.min_side, self.max_side = min_side, max_side
        self.min_objects, self.max_objects = min_objects, max_objects
        self.min_obj, self.max_obj = min_obj, max_obj
        self.difficulty = difficulty
        self.gray_every, self.png_every = gray_every, png_every


def image_role(index, opts):
    """Which special case image ``index`` of a split is: crowd, png, empty, gray or normal."""
    if index in (ROLE_CROWD, ROLE_PNG, ROLE_EMPTY, ROLE_GRAY):
        return {ROLE_CROWD: "crowd", ROLE_PNG: "png", ROLE_EMPTY: "empty", ROLE_GRAY: "gray"}[index]
    if opts.png_every and index % opts.png_every == ROLE_PNG:
        return "png"
    if opts.gray_every and index % opts.gray_every == ROLE_GRAY:
        return "gray"
    return "normal"


def make_background(rng, h, w, difficulty):
    """(h, w, 3) uint8: muted two-colour gradient + coarse blotches + fine noise + lines."""
    c0, c1 = rng.uniform(50, 170, 3), rng.uniform(50, 170, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xs * math.cos(angle) / w + ys * math.sin(angle) / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0.astype(np.float32) + t[..., None] * (c1 - c0).astype(np.float32)
    blotch_amp = 10 + 25 * difficulty
    coarse = rng.uniform(-blotch_amp, blotch_amp, (max(h // 32, 2), max(w // 32, 2), 3)).astype(np.float32)
    img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    noise_amp = int(4 + 16 * difficulty)
    img += rng.integers(-noise_amp, noise_amp + 1, (h, w, 3), dtype=np.int16)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 4 + int(12 * difficulty)))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        grey = float(rng.uniform(40, 200))
        colour = tuple(float(np.clip(grey + rng.uniform(-25, 25), 0, 255)) for _ in range(3))
        cv2.line(img, p0, p1, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def _rotate(points, degrees):
    rad = math.radians(degrees)
    rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
    return points @ rot.T


def shape_polygon(rng, shape, size):
    """Polygon (N, 2) float around (0, 0) of a shape whose extent is about ``size`` pixels."""
    r = size / 2.0
    if shape == "red_circle":
        return cv2.ellipse2Poly((0, 0), (int(round(r)), int(round(r))), 0, 0, 360, 8).astype(np.float64)
    if shape == "magenta_ellipse":
        minor = int(round(r * rng.uniform(0.4, 0.65)))
        angle = int(rng.integers(0, 180))
        return cv2.ellipse2Poly((0, 0), (int(round(r)), max(minor, 2)), angle, 0, 360, 8).astype(np.float64)
    if shape == "green_square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * r * 0.8
        return _rotate(pts, rng.uniform(-20, 20))
    if shape == "blue_triangle":
        pts = np.array([[0, -1], [0.866, 0.5], [-0.866, 0.5]], np.float64) * r
        return _rotate(pts, rng.uniform(-25, 25))
    if shape == "yellow_cross":
        a = 0.3
        pts = np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                        [-a, a], [-1, a], [-1, -a], [-a, -a]], np.float64) * r
        return _rotate(pts, rng.uniform(-15, 15))
    raise ValueError("unknown shape %r" % shape)


def paint_polygon(rng, img, pts, colour, jitter):
    """Fill integer polygon ``pts`` (N, 2) on ``img`` with a shaded colour.

    Returns (mask of the object's pixels inside its box, (x0, y0)) or None if nothing is
    visible. The shading is a linear brightness ramp, so objects are not flat.
    """
    h, w = img.shape[:2]
    x0, y0 = np.maximum(pts.min(axis=0), 0)
    x1, y1 = np.minimum(pts.max(axis=0), [w - 1, h - 1])
    if x1 < x0 or y1 < y0:
        return None
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(pts - [x0, y0]).astype(np.int32)], 1)
    if not mask.any():
        return None
    base = np.clip(np.array(colour, np.float32) + rng.uniform(-jitter, jitter, 3), 0, 255)
    mh, mw = mask.shape
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.arange(mw, dtype=np.float32)[None, :] * math.cos(angle) / max(mw, 1)
            + np.arange(mh, dtype=np.float32)[:, None] * math.sin(angle) / max(mh, 1))
    shade = 0.75 + 0.4 * (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    patch = np.clip(shade[..., None] * base, 0, 255).astype(np.uint8)
    roi = img[y0:y1 + 1, x0:x1 + 1]
    roi[mask > 0] = patch[mask > 0]
    return mask, (int(x0), int(y0))


def mask_box(mask, origin):
    """Tight COCO box [x, y, w, h] (pixel i covers [i, i+1)) and area of a local mask."""
    x, y, bw, bh = cv2.boundingRect(mask)
    return [float(origin[0] + x), float(origin[1] + y), float(bw), float(bh)], float(cv2.countNonZero(mask))


def _acceptable(box, boxes, max_iou):
    """Limit overlap: IoU below max_iou and no box mostly covering the smaller one."""
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        iw = min(x + w, bx + bw) - max(x, bx)
        ih = min(y + h, by + bh) - max(y, by)
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        if inter / (w * h + bw * bh - inter) > max_iou or inter / min(w * h, bw * bh) > 0.5:
            return False
    return True


def place_objects(rng, img, opts, count):
    """Draw up to ``count`` objects; return annotation dicts (without ids)."""
    h, w = img.shape[:2]
    limit = max(min(opts.max_obj, int(0.6 * min(h, w))), opts.min_obj)
    max_iou = 0.1 + 0.3 * opts.difficulty
    jitter = 15 + 40 * opts.difficulty
    anns, boxes = [], []
    for _ in range(count):
        cat = int(rng.integers(len(CATEGORIES)))
        cat_id, name, colour = CATEGORIES[cat]
        for _attempt in range(20):
            size = math.exp(rng.uniform(math.log(opts.min_obj), math.log(limit)))
            poly = shape_polygon(rng, name, size)
            lo, hi = poly.min(axis=0), poly.max(axis=0)
            if np.any(hi - lo >= [w - 2, h - 2]):
                continue
            centre = rng.uniform(-lo, [w - 1, h - 1] - hi)
            pts = np.round(poly + centre).astype(np.int32)
            guess = [float(pts[:, 0].min()), float(pts[:, 1].min()),
                     float(np.ptp(pts[:, 0]) + 1), float(np.ptp(pts[:, 1]) + 1)]
            if _acceptable(guess, boxes, max_iou):
                break
        else:
            continue
        painted = paint_polygon(rng, img, pts, colour, jitter)
        if painted is None:
            continue
        box, area = mask_box(*painted)
        boxes.append(box)
        anns.append({"category_id": cat_id, "bbox": box, "area": area, "iscrowd": 0,
                     "segmentation": [pts.astype(np.float64).ravel().tolist()]})
    return anns, boxes


def rle_encode(mask):
    """Uncompressed COCO RLE of a (h, w) 0/1 mask: column-major runs starting with zeros."""
    flat = np.asarray(mask, np.uint8).T.ravel()
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def place_crowd(rng, img, boxes):
    """Draw a tight cluster of small same-category shapes; return one iscrowd=1 annotation."""
    h, w = img.shape[:2]
    cat_id, name, colour = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    region = min(h, w) // 3
    for _attempt in range(20):
        rx, ry = int(rng.integers(0, w - region)), int(rng.integers(0, h - region))
        if _acceptable([rx, ry, region, region], boxes, 0.0):
            break
    full = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(6, 12))):
        size = rng.uniform(8, max(region / 4, 9))
        poly = shape_polygon(rng, name, size)
        centre = rng.uniform([rx, ry] - poly.min(axis=0), [rx + region, ry + region] - poly.max(axis=0))
        pts = np.round(poly + centre).astype(np.int32)
        painted = paint_polygon(rng, img, pts, colour, 10)
        if painted is not None:
            mask, (x0, y0) = painted
            full[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] |= mask
    box, area = mask_box(full, (0, 0))
    return {"category_id": cat_id, "bbox": box, "area": area, "iscrowd": 1, "segmentation": rle_encode(full)}


def encode_image(img, role):
    """Encode to the file format of the role: grayscale JPEG, RGBA PNG or colour JPEG."""
    if role == "gray":
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 90])
        return ok, buf, ".jpg"
    if role == "png":
        bgra = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
        return (*cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1]), ".png")
    return (*cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90]), ".jpg")


def make_image(task):
    """Generate, encode and write one image; returns (image entry, annotations without ids)."""
    seed, split, index, image_dir, opts = task
    split_num, _, id_base = SPLITS[split]
    rng = np.random.default_rng([seed, split_num, index])
    role = image_role(index, opts)
    h = int(rng.integers(opts.min_side, opts.max_side + 1))
    w = int(rng.integers(opts.min_side, opts.max_side + 1))
    img = make_background(rng, h, w, opts.difficulty)
    anns, boxes = [], []
    if role != "empty":
        count = int(rng.integers(opts.min_objects, opts.max_objects + 1))
        anns, boxes = place_objects(rng, img, opts, max(count, 1 if role == "crowd" else 0))
    if role == "crowd":
        anns.append(place_crowd(rng, img, boxes))
    image_id = id_base + index
    ok, buf, ext = encode_image(img, role)
    if not ok:
        raise RuntimeError("cv2 could not encode image %d of %s" % (index, split))
    file_name = "%012d%s" % (image_id, ext)
    with open(os.path.join(image_dir, file_name), "wb") as f:
        f.write(buf.tobytes())
    entry = {"id": image_id, "file_name": file_name, "width": w, "height": h, "license": 1}
    return entry, [dict(a, image_id=image_id) for a in anns]


def coco_document(images, annotations, split):
    return {
        "info": {"description": "synthetic shapes (%s)" % split, "version": "1.0", "year": 2024},
        "licenses": [{"id": 1, "name": "generated", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cid, "name": name, "supercategory": "shape"} for cid, name, _ in CATEGORIES],
    }


def make_split(out, split, num, seed, opts, pool, first_ann_id):
    """Write one split's images and json; returns the next free annotation id."""
    _, folder, _ = SPLITS[split]
    image_dir = os.path.join(out, folder)
    os.makedirs(image_dir, exist_ok=True)
    tasks = [(seed, split, i, image_dir, opts) for i in range(num)]
    results = pool.map(make_image, tasks, chunksize=8) if pool else [make_image(t) for t in tasks]
    images, annotations = [], []
    ann_id = first_ann_id
    for entry, anns in results:
        images.append(entry)
        for ann in anns:
            annotations.append(dict(ann, id=ann_id))
            ann_id += 1
    ann_path = os.path.join(out, "annotations", "instances_%s.json" % folder)
    with open(ann_path, "w", encoding="utf-8") as f:
        json.dump(coco_document(images, annotations, split), f)
    LOGGER.info("%s: %d images, %d annotations -> %s", split, len(images), len(annotations), ann_path)
    return ann_id


def make_dataset(out, num_train, num_val, seed=0, workers=1, **options):
    """Write the synthetic COCO dataset under ``out``; returns the annotation file paths.

    ``options`` are the keyword arguments of ``Options`` (sides, object counts and sizes,
    difficulty). ``workers`` > 1 generates images in processes; output is identical.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError("num_train and num_val must be >= 0, got %d, %d" % (num_train, num_val))
    if seed < 0:
        raise ValueError("seed must be >= 0, got %d" % seed)
    opts = Options(**options)
    os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
    pool = multiprocessing.Pool(workers) if workers > 1 else None
    try:
        next_id = make_split(out, "train", num_train, seed, opts, pool, 1)
        make_split(out, "val", num_val, seed, opts, pool, next_id)
    except BaseException:
        if pool:
            pool.terminate()
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
    return {split: os.path.join(out, "annotations", "instances_%s.json" % folder)
            for split, (_, folder, _) in SPLITS.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (COCO layout)")
    parser.add_argument("--num_train", type=int, default=512)
    parser.add_argument("--num_val", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="generator processes (output is identical)")
    parser.add_argument("--min_side", type=int, default=256)
    parser.add_argument("--max_side", type=int, default=640)
    parser.add_argument("--min_objects", type=int, default=1)
    parser.add_argument("--max_objects", type=int, default=6)
    parser.add_argument("--min_obj", type=int, default=24, help="smallest object extent in pixels")
    parser.add_argument("--max_obj", type=int, default=160, help="largest object extent in pixels")
    parser.add_argument("--difficulty", type=float, default=0.3,
                        help="0..1: background clutter, noise, colour jitter and allowed overlap")
    parser.add_argument("--gray_every", type=int, default=10, help="every Nth image is grayscale (0: only one)")
    parser.add_argument("--png_every", type=int, default=25, help="every Nth image is an RGBA PNG (0: only one)")
    return parser.parse_args(argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = vars(parse_args(argv))
    out, num_train, num_val, seed, workers = (args.pop(k) for k in ("out", "num_train", "num_val", "seed", "workers"))
    from src.model_utils.entry import guarded

    def action():
        paths = make_dataset(out, num_train, num_val, seed, workers=workers, **args)
        print("wrote %s and %s" % (paths["train"], paths["val"]))
    return guarded(action)


if __name__ == "__main__":
    sys.exit(main())
