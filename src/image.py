"""Image-level helpers of the CenterNet training pipeline (official ctdet conventions).

Coordinates are pixels with (x, y) order; images are BGR (cv2) HWC arrays. Boxes are
(x1, y1, x2, y2). ``output_size`` arguments are (width, height), as in the official code.
"""
import collections
import math

import cv2
import numpy as np

# cv2.COLOR_BGR2GRAY weights for B, G, R (the same ones cv2 uses on float images).
GRAY_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], np.float64)

# Order indices of the three colour operations.
BRIGHTNESS, CONTRAST, SATURATION = 0, 1, 2


def get_border(border, size):
    """Largest ``border / 2**k`` leaving a non-empty centre range in ``size`` (official _get_border)."""
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def get_dir(point, rot_rad):
    """Rotate the 2-vector ``point`` by ``rot_rad`` radians."""
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs], np.float32)


def get_3rd_point(a, b):
    """The point completing a right angle at ``b``: b + (a - b) rotated by 90 degrees."""
    direct = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    return np.asarray(b, np.float32) + np.array([-direct[1], direct[0]], np.float32)


def get_affine_transform(center, scale, rot, output_size, shift=(0.0, 0.0), inv=False):
    """2x3 affine mapping the ``scale``-wide square around ``center`` onto ``output_size`` (w, h).

    Three correspondences define it (official CenterNet): the centre, a point half a
    width above the centre (rotated by ``rot`` degrees in the source) and the third
    point of the right angle. The horizontal extent ``scale`` maps to the output width;
    ``inv`` returns the output -> source transform.
    """
    if np.isscalar(scale):
        scale = np.array([scale, scale], np.float32)
    scale = np.asarray(scale, np.float32)
    shift = np.asarray(shift, np.float32)
    center = np.asarray(center, np.float32)
    dst_w, dst_h = output_size
    src_dir = get_dir([0, scale[0] * -0.5], np.pi * rot / 180)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center + scale * shift
    src[1] = center + src_dir + scale * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = get_3rd_point(src[0], src[1])
    dst[2] = get_3rd_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_transform(points, trans, dtype=np.float32):
    """Apply the 2x3 ``trans`` to points of shape (2,) or (N, 2); computed and returned in ``dtype``."""
    pts = np.asarray(points, dtype)
    flat = pts.reshape(-1, 2)
    out = flat @ np.asarray(trans, dtype)[:, :2].T + np.asarray(trans, dtype)[:, 2]
    return out.reshape(pts.shape).astype(dtype)


def transform_boxes(boxes, trans):
    """(N, 4) x1y1x2y2 boxes -> axis-aligned hull (min/max) of their 4 transformed corners, float64.

    Float64 as the official affine_transform: in float32 about 1 box in 10,000 lands its
    centre on another heatmap cell.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
    moved = affine_transform(corners.reshape(-1, 2), trans, np.float64).reshape(-1, 4, 2)
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)


def gaussian_radius(det_size, min_overlap=0.7):
    """CornerNet radius: the smallest of three corner-shift cases keeping IoU >= min_overlap.

    ``det_size`` is (height, width). Each case solves a quadratic a r^2 - b r + c = 0 and
    takes (b + sqrt(b^2 - 4ac)) / 2, exactly as the official implementation (which is not
    the textbook root, but is what every CenterNet model was trained with).
    """
    height, width = det_size
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    a2, b2 = 4, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian2d(shape, sigma=1.0):
    """(h, w) float64 Gaussian with peak 1 at the centre; values below eps * max are zeroed."""
    m, n = [(ss - 1.0) / 2.0 for ss in shape]
    y, x = np.ogrid[-m:m + 1, -n:n + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def umich_kernel(radius):
    """The (2r+1)^2 float32 kernel drawn by draw_umich_gaussian (sigma = diameter / 6)."""
    diameter = 2 * radius + 1
    return gaussian2d((diameter, diameter), sigma=diameter / 6).astype(np.float32)


def _window(center, radius, height, width):
    """Slices of the heatmap and of the (2r+1)^2 kernel overlapping around integer ``center``."""
    x, y = int(center[0]), int(center[1])
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    hm_sl = (slice(y - top, y + bottom), slice(x - left, x + right))
    k_sl = (slice(radius - top, radius + bottom), slice(radius - left, radius + right))
    return hm_sl, k_sl, min(top + bottom, left + right) > 0


def draw_umich_gaussian(heatmap, center, radius, k=1, kernel=None):
    """Max-combine a Gaussian of ``radius`` at integer ``center`` (x, y) into (h, w) ``heatmap``.

    ``kernel`` may pass a cached umich_kernel(radius). Modifies and returns ``heatmap``.
    """
    kernel = umich_kernel(radius) if kernel is None else kernel
    hm_sl, k_sl, ok = _window(center, radius, *heatmap.shape[:2])
    if ok:
        target = heatmap[hm_sl]
        np.maximum(target, kernel[k_sl] * k, out=target)
    return heatmap


def draw_msra_gaussian(heatmap, center, sigma):
    """Max-combine an unnormalised Gaussian of std ``sigma`` (extent 3 sigma) centred at round(center)."""
    tmp_size = sigma * 3
    mu_x, mu_y = int(center[0] + 0.5), int(center[1] + 0.5)
    h, w = heatmap.shape[:2]
    ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
    br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
    if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
        return heatmap
    size = 2 * tmp_size + 1
    x = np.arange(0, size, 1, np.float32)
    y = x[:, None]
    x0 = y0 = size // 2
    g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))
    gx = max(0, -ul[0]), min(br[0], w) - ul[0]
    gy = max(0, -ul[1]), min(br[1], h) - ul[1]
    ix = max(0, ul[0]), min(br[0], w)
    iy = max(0, ul[1]), min(br[1], h)
    target = heatmap[iy[0]:iy[1], ix[0]:ix[1]]
    np.maximum(target, g[gy[0]:gy[1], gx[0]:gx[1]], out=target)
    return heatmap


def draw_dense_reg(regmap, heatmap, center, value, radius, kernel=None):
    """Write ``value`` (dim,) into (dim, h, w) ``regmap`` where this Gaussian dominates ``heatmap``.

    ``heatmap`` is the class-max heatmap (h, w) AFTER drawing this object (official
    draw_dense_reg without the offset mode); only the window around ``center`` is read.
    """
    kernel = umich_kernel(radius) if kernel is None else kernel
    hm_sl, k_sl, ok = _window(center, radius, *heatmap.shape[:2])
    if ok:
        value = np.asarray(value, np.float32).reshape(-1, 1, 1)
        win = kernel[k_sl] >= heatmap[hm_sl]
        masked = regmap[(slice(None),) + hm_sl]
        masked[:] = np.where(win[None], value, masked)
    return regmap


ColorAugParams = collections.namedtuple("ColorAugParams", ["order", "alphas", "light"])
ColorAugParams.__doc__ = """Random draws of one colour augmentation.

order: the 3 op indices (BRIGHTNESS, CONTRAST, SATURATION) in application order;
alphas: (3,) blend factor of each op, indexed by op; light: (3,) PCA lighting draws."""


def sample_color_aug(rng, var=0.4, alphastd=0.1):
    """Draw the official colour augmentation: ops in random order, alpha = 1 + U(-var, var)."""
    order = tuple(int(i) for i in rng.permutation(3))
    alphas = 1.0 + rng.uniform(-var, var, 3)
    light = rng.normal(0.0, alphastd, 3)
    return ColorAugParams(order, alphas, light)


def color_aug_reference(image, params, eig_val, eig_vec):
    """Step-by-step official color_aug on a float32 BGR image in [0, 1]; returns a new array.

    gs and gs_mean come from the image before the three ops (as the official code).
    Kept as the readable specification the folded matrix is tested against.
    """
    image = np.array(image, np.float32)
    gs = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gs_mean = gs.mean()
    for op in params.order:
        alpha = np.float32(params.alphas[op])
        if op == BRIGHTNESS:
            image *= alpha
        elif op == CONTRAST:
            image = image * alpha + gs_mean * (1 - alpha)
        else:
            image = image * alpha + gs[:, :, None] * (1 - alpha)
    image += np.dot(np.asarray(eig_vec, np.float32), np.asarray(eig_val, np.float32) * params.light)
    return image.astype(np.float32)


def color_normalize_matrix(params, channel_mean, eig_val, eig_vec, mean, std):
    """Fold /255, colour augmentation and (x - mean) / std into one (3, 4) pixel matrix.

    Every op is affine in the pixel x0 = p / 255 (gs = GRAY_WEIGHTS_BGR . x0 and gs_mean is
    a constant), so the composition is x = A x0 + b. ``channel_mean`` is the per-channel
    mean of the uint8 image (gs_mean = GRAY_WEIGHTS_BGR . channel_mean / 255). ``params``
    None means no colour augmentation. Apply with cv2.transform to float32 pixels p.
    """
    a = np.eye(3)
    b = np.zeros(3)
    if params is not None:
        gs_mean = float(GRAY_WEIGHTS_BGR @ (np.asarray(channel_mean, np.float64)[:3] / 255.0))
        for op in params.order:
            alpha = float(params.alphas[op])
            if op == BRIGHTNESS:
                a, b = alpha * a, alpha * b
            elif op == CONTRAST:
                a, b = alpha * a, alpha * b + (1 - alpha) * gs_mean
            else:
                a, b = alpha * a + (1 - alpha) * np.outer(np.ones(3), GRAY_WEIGHTS_BGR), alpha * b
        b = b + np.asarray(eig_vec, np.float64) @ (np.asarray(eig_val, np.float64) * params.light)
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    a = a / std[:, None] / 255.0
    b = (b - mean) / std
    return np.concatenate([a, b[:, None]], axis=1)


def apply_pixel_matrix(image, matrix):
    """(H, W, 3) uint8 image and (3, 4) matrix -> (3, H, W) float32 of matrix @ [p, 1]."""
    out = cv2.transform(image.astype(np.float32), np.asarray(matrix, np.float32))
    return np.ascontiguousarray(out.transpose(2, 0, 1))


# ----------------------------------------------------------------------------- test-time input

def round_up(value, multiple=32):
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return int(-(-int(value) // multiple) * multiple)


def input_geometry(height, width, scale, keep_res, input_res, down_ratio=4):
    """Where the image goes in the network input at one test scale (official ctdet ``pre_process``).

    The image is first resized to (int(height * scale), int(width * scale)); then:

    - ``keep_res``: the input is the resized image padded to ``(new | 31) + 1`` per side (the
      next multiple of 32, one more block when already a multiple), centred on
      ``c = (new_w // 2, new_h // 2)`` with ``s = (inp_w, inp_h)`` (a pure translation).
    - fixed: ``input_res`` = [h, w] is the official ``input_h, input_w``; the largest side
      of the ORIGINAL image spans ``input_w`` (so a scale below 1 shrinks the content inside
      a fixed input), centred on ``c = (new_w / 2, new_h / 2)``. When ``input_res`` is not a
      multiple of 32 (the default 680) the input is padded to the next multiple (704)
      around the centre: ``s = max(h, w) * inp_w / input_w`` keeps the content at the
      official size, surrounded by a wider border.

    Returns a dict: new_height, new_width, inp_height, inp_width, and the post-processing
    meta c ([x, y] floats), s ([sx, sy] floats), out_height, out_width (input / down_ratio).
    All values are plain Python numbers, so the meta survives a JSON round trip exactly.
    """
    new_h, new_w = int(height * scale), int(width * scale)
    if new_h < 1 or new_w < 1:
        raise ValueError("test scale %r leaves nothing of a %dx%d image" % (scale, width, height))
    if keep_res:
        inp_h, inp_w = (new_h | 31) + 1, (new_w | 31) + 1
        center = [float(new_w // 2), float(new_h // 2)]
        size = [float(inp_w), float(inp_h)]
    else:
        res_h, res_w = (int(r) for r in input_res)
        if res_h <= 0 or res_w <= 0:
            raise ValueError("input_res_test must be positive [h, w], got %r" % (input_res,))
        inp_h, inp_w = round_up(res_h), round_up(res_w)
        center = [float(np.float32(new_w / 2.0)), float(np.float32(new_h / 2.0))]
        side = float(max(height, width)) * inp_w / res_w
        size = [side, side]
    return {"new_height": new_h, "new_width": new_w, "inp_height": inp_h, "inp_width": inp_w,
            "c": center, "s": size, "out_height": inp_h // down_ratio, "out_width": inp_w // down_ratio}


def normalize_to_chw(image, mean, std):
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float32 of (pixel / 255 - mean) / std (mean, std per BGR channel)."""
    mean = np.asarray(mean, np.float32).reshape(3)
    std = np.asarray(std, np.float32).reshape(3)
    out = image.astype(np.float32)
    out *= (1.0 / (255.0 * std))
    out -= mean / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))[None]


def preprocess_test_image(image, scale, keep_res, input_res, mean, std, down_ratio=4):
    """Test-time network input of a BGR uint8 image at one scale: (input (1, 3, H, W) float32, meta).

    Resize by ``scale`` (bilinear), warp into the input with the transform of
    ``input_geometry`` (bilinear, zero border), then normalise. ``meta`` holds c, s,
    out_height, out_width (what post-processing needs) plus the input and original sizes.
    """
    height, width = image.shape[:2]
    geo = input_geometry(height, width, scale, keep_res, input_res, down_ratio)
    resized = image
    if (geo["new_height"], geo["new_width"]) != (height, width):
        resized = cv2.resize(image, (geo["new_width"], geo["new_height"]))
    trans = get_affine_transform(np.array(geo["c"], np.float32), np.array(geo["s"], np.float32), 0,
                                 [geo["inp_width"], geo["inp_height"]])
    warped = cv2.warpAffine(resized, trans, (geo["inp_width"], geo["inp_height"]), flags=cv2.INTER_LINEAR)
    meta = {"c": geo["c"], "s": geo["s"], "out_height": geo["out_height"], "out_width": geo["out_width"],
            "inp_height": geo["inp_height"], "inp_width": geo["inp_width"], "height": int(height),
            "width": int(width), "scale": float(scale)}
    return normalize_to_chw(warped, mean, std), meta
