"""Drawing of ground truth and detections: boxes in the class colour with the class name (and score).

Colours come from eval_config.color_list (RGB triples, cycled when there are more classes);
images are BGR (cv2). Only detections scoring at least ``score_thresh`` are drawn.
"""
import os

import cv2
import numpy as np

from src.model_utils.file_io import write_bytes_atomic


def class_color(index, color_list):
    """BGR colour of contiguous class ``index`` from the RGB ``color_list``."""
    if not color_list:
        return (0, 255, 0)
    r, g, b = color_list[int(index) % len(color_list)]
    return (int(b), int(g), int(r))


def _text_color(color):
    """Black or white, whichever reads better on ``color`` (BGR)."""
    b, g, r = color
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def draw_box(image, box, label, color, thickness=None, font_scale=None):
    """Draw one x1y1x2y2 box with a filled label tab above it (inside the image when at the top edge)."""
    height, width = image.shape[:2]
    thickness = thickness or max(1, int(round(min(height, width) / 300)))
    font_scale = font_scale or max(0.35, min(height, width) / 1000)
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_8)
    if label:
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
        x0 = min(max(x1, 0), max(width - tw - 2, 0))
        cv2.rectangle(image, (x0, top), (x0 + tw + 2, top + th + base + 2), color, -1)
        cv2.putText(image, label, (x0 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    _text_color(color), 1, cv2.LINE_AA)
    return image


def draw_ground_truth(image, annotations, category_ids, class_names, color_list):
    """Copy of ``image`` with its COCO annotations (bbox [x, y, w, h]) drawn; crowd regions marked."""
    out = image.copy()
    index = {int(c): j for j, c in enumerate(category_ids)}
    for ann in annotations:
        j = index.get(int(ann["category_id"]))
        if j is None:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        label = class_names[j] + (" (crowd)" if ann.get("iscrowd") else "")
        draw_box(out, (x, y, x + w, y + h), label, class_color(j, color_list))
    return out


def draw_detections(image, per_class, class_names, color_list, score_thresh):
    """Copy of ``image`` with the detections (list over classes of (n, 5) x1y1x2y2 score) >= score_thresh."""
    out = image.copy()
    found = [(float(box[4]), j, box) for j, boxes in enumerate(per_class) for box in np.asarray(boxes)
             if box[4] >= score_thresh]
    for score, j, box in sorted(found, key=lambda t: t[0]):  # highest score drawn last, on top
        name = class_names[j] if j < len(class_names) else str(j)
        draw_box(out, box[:4], "%s %.2f" % (name, score), class_color(j, color_list))
    return out


def save_image(path, image, setting="--save_result_dir"):
    """Write ``image`` (format by extension) atomically; raise OSError when cv2 cannot encode it.

    A full disk raises src.model_utils.file_io.DiskFullError naming the file and the space free.
    """
    ok, data = cv2.imencode(os.path.splitext(path)[1] or ".png", image)
    if not ok:
        raise OSError("cannot encode image %s" % path)
    return write_bytes_atomic(path, data.tobytes(), setting)
