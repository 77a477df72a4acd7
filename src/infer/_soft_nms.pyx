# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled gaussian/linear/hard soft-NMS; same algorithm as soft_nms.soft_nms_numpy."""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp

cnp.import_array()


def soft_nms_cython(cnp.ndarray[cnp.float64_t, ndim=2] boxes_in, double sigma=0.5, double nt=0.5,
                    double threshold=0.001, int method=2):
    """boxes (N, 5) float64 [x1, y1, x2, y2, score] -> kept boxes (M, 5) float32 with decayed scores."""
    cdef cnp.ndarray[cnp.float64_t, ndim=2] dets = boxes_in.copy()
    cdef Py_ssize_t n = dets.shape[0]
    cdef Py_ssize_t i, j, best, write, c
    cdef double tmp, iw, ih, inter, union, overlap, weight, area_i
    i = 0
    while i < n:
        best = i
        for j in range(i + 1, n):
            if dets[j, 4] > dets[best, 4]:
                best = j
        if best != i:
            for c in range(5):
                tmp = dets[i, c]
                dets[i, c] = dets[best, c]
                dets[best, c] = tmp
        area_i = (dets[i, 2] - dets[i, 0] + 1) * (dets[i, 3] - dets[i, 1] + 1)
        write = i + 1
        for j in range(i + 1, n):
            iw = min(dets[i, 2], dets[j, 2]) - max(dets[i, 0], dets[j, 0]) + 1
            ih = min(dets[i, 3], dets[j, 3]) - max(dets[i, 1], dets[j, 1]) + 1
            if iw > 0 and ih > 0:
                inter = iw * ih
                union = area_i + (dets[j, 2] - dets[j, 0] + 1) * (dets[j, 3] - dets[j, 1] + 1) - inter
                overlap = inter / union
                if method == 1:
                    weight = 1 - overlap if overlap > nt else 1.0
                elif method == 2:
                    weight = exp(-(overlap * overlap) / sigma)
                else:
                    weight = 0.0 if overlap > nt else 1.0
                dets[j, 4] = dets[j, 4] * weight
            if dets[j, 4] >= threshold:
                if write != j:
                    for c in range(5):
                        dets[write, c] = dets[j, c]
                write += 1
        n = write
        i += 1
    return np.asarray(dets[:n], dtype=np.float32)
