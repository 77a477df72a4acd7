"""Soft-NMS (Bodla et al. 2017), configured by eval_config's SOFT_NMS and soft_nms_* keys.

The compiled version (``src/infer/_soft_nms.pyx``, built by ``python setup.py build_ext --inplace``)
and the numpy version below implement the same algorithm step for step and are proven equal
by the tests: for each position i, swap the highest-scoring remaining box into i, decay the
score of every later box by its overlap with box i, and drop (keeping the order of the rest)
the boxes whose score fell below ``threshold``. Overlaps use the official +1 pixel
convention: area = (x2 - x1 + 1) * (y2 - y1 + 1).
"""
import collections
import logging

import numpy as np

logger = logging.getLogger(__name__)

METHODS = {"linear": 1, "gaussian": 2, "hard": 0}

try:
    from src.infer._soft_nms import soft_nms_cython as _compiled
except ImportError:  # not built: fall back to numpy, saying how to build
    _compiled = None


def soft_nms_numpy(boxes, sigma, nt, threshold, method):
    """boxes (N, 5) [x1, y1, x2, y2, score] -> kept boxes (M, 5) float32 with decayed scores.

    ``method``: a METHODS name or its number (the compiled version's encoding).
    """
    method = METHODS.get(method, method)
    dets = np.array(boxes, dtype=np.float64).reshape(-1, 5)
    n = len(dets)
    i = 0
    while i < n:
        best = i + int(np.argmax(dets[i:n, 4]))
        if best != i:
            dets[[i, best]] = dets[[best, i]]
        rest = dets[i + 1:n]
        if len(rest):
            box = dets[i]
            iw = np.minimum(box[2], rest[:, 2]) - np.maximum(box[0], rest[:, 0]) + 1
            ih = np.minimum(box[3], rest[:, 3]) - np.maximum(box[1], rest[:, 1]) + 1
            inter = iw * ih
            union = ((box[2] - box[0] + 1) * (box[3] - box[1] + 1)
                     + (rest[:, 2] - rest[:, 0] + 1) * (rest[:, 3] - rest[:, 1] + 1) - inter)
            overlap = np.where((iw > 0) & (ih > 0), inter / union, 0.0)
            if method == 1:
                weight = np.where(overlap > nt, 1 - overlap, 1.0)
            elif method == 2:
                weight = np.exp(-(overlap * overlap) / sigma)
            else:
                weight = np.where(overlap > nt, 0.0, 1.0)
            rest[:, 4] *= np.where((iw > 0) & (ih > 0), weight, 1.0)
            keep = rest[rest[:, 4] >= threshold]
            dets[i + 1:i + 1 + len(keep)] = keep
            n = i + 1 + len(keep)
        i += 1
    return dets[:n].astype(np.float32)


def soft_nms(boxes, sigma, nt, threshold, method):
    """Compiled soft-NMS when built, else the numpy version (same results)."""
    method = METHODS.get(method, method)
    if _compiled is not None:
        return _compiled(np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 5), sigma, nt, threshold, method)
    return soft_nms_numpy(boxes, sigma, nt, threshold, method)


class SoftNMS(collections.namedtuple("SoftNMS", "enabled method sigma nt threshold")):
    """The soft-NMS of an evaluation: ``enabled`` is eval_config.SOFT_NMS, the rest its soft_nms_* keys."""

    __slots__ = ()

    @classmethod
    def from_config(cls, eval_config):
        ev = eval_config
        if ev.soft_nms_method not in METHODS:
            raise ValueError("eval_config.soft_nms_method=%r is not one of %s" % (ev.soft_nms_method, list(METHODS)))
        if ev.soft_nms_sigma <= 0:
            raise ValueError("eval_config.soft_nms_sigma must be positive, got %r" % ev.soft_nms_sigma)
        if not 0 <= ev.soft_nms_Nt <= 1:
            raise ValueError("eval_config.soft_nms_Nt must lie in [0, 1], got %r" % ev.soft_nms_Nt)
        if not 0 <= ev.soft_nms_threshold < 1:
            raise ValueError("eval_config.soft_nms_threshold must lie in [0, 1), got %r" % ev.soft_nms_threshold)
        return cls(bool(ev.SOFT_NMS), ev.soft_nms_method, float(ev.soft_nms_sigma), float(ev.soft_nms_Nt),
                   float(ev.soft_nms_threshold))

    def __call__(self, boxes):
        """Soft-NMS of one class's (N, 5) boxes with these settings (``enabled`` is the caller's test)."""
        return soft_nms(boxes, self.sigma, self.nt, self.threshold, self.method)


def is_compiled():
    return _compiled is not None


def warn_if_not_compiled():
    if _compiled is None:
        logger.warning("compiled soft-NMS not built: using the numpy version (same results, slower). "
                       "Build it with 'python setup.py build_ext --inplace' (needs Cython and a C compiler).")
