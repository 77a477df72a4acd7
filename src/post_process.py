"""Post-processing after decode: back to original image coordinates, per-class grouping,
multi-scale merge, soft-NMS and the per-image cap; COCO result records.

Coordinates: decode gives boxes on the output map (input / down_ratio). The inverse of the
pre-processing affine transform (centre ``c``, scale ``s``, output size) maps them onto the
image as resized for that test scale, and dividing by the scale gives original pixels.
"""
import numpy as np

from src.image import affine_transform, get_affine_transform


def transform_preds(coords, center, scale, output_size):
    """Map (N, 2) output-map points back to image coordinates; output_size = (width, height)."""
    trans = get_affine_transform(center, scale, 0, output_size, inv=True)
    return affine_transform(np.asarray(coords, np.float64), trans)


def to_image_coords(dets, meta, scale=1.0):
    """dets (K, 6) [x1, y1, x2, y2, score, class] on the output map -> same layout on the original image."""
    dets = np.array(dets, dtype=np.float64).reshape(-1, 6)
    size = (meta["out_width"], meta["out_height"])
    corners = transform_preds(dets[:, :4].reshape(-1, 2), meta["c"], meta["s"], size).reshape(-1, 4)
    dets[:, :4] = corners / scale
    return dets


def group_by_class(dets, num_classes):
    """List over classes of (n, 5) float32 arrays [x1, y1, x2, y2, score] (class = dets[:, 5])."""
    classes = dets[:, 5].astype(np.int64)
    return [dets[classes == j, :5].astype(np.float32) for j in range(num_classes)]


def merge_outputs(per_scale, num_classes, soft_nms, max_per_image):
    """Merge the per-class detections of every test scale into one per-class list.

    ``soft_nms`` (a src.infer.soft_nms.SoftNMS) runs per class when it is enabled or when several
    scales are merged (the official behaviour). At most ``max_per_image`` detections
    survive, the highest scores first.
    """
    results = []
    for j in range(num_classes):
        boxes = np.concatenate([scale_dets[j] for scale_dets in per_scale], axis=0) if per_scale else \
            np.zeros((0, 5), np.float32)
        if len(boxes) and (soft_nms.enabled or len(per_scale) > 1):
            boxes = soft_nms(boxes)
        results.append(boxes)
    scores = np.concatenate([r[:, 4] for r in results]) if results else np.zeros(0)
    if len(scores) > max_per_image:
        order = np.argsort(-scores, kind="stable")[:max_per_image]
        keep = np.zeros(len(scores), bool)
        keep[order] = True
        start = 0
        for j, boxes in enumerate(results):
            results[j] = boxes[keep[start:start + len(boxes)]]
            start += len(boxes)
    return results


def post_process_image(scale_outputs, num_classes, soft_nms, max_per_image):
    """Full post-processing of one image.

    ``scale_outputs``: list of (dets (K, 6) from decode, meta, scale) per test scale.
    Detections scoring exactly 0 (a heatmap that is 0 everywhere still yields K peaks) carry
    no information and are dropped, so such an image has no detections.
    Returns a list over classes of (n, 5) arrays in original image coordinates.
    """
    per_scale = []
    for dets, meta, scale in scale_outputs:
        dets = np.asarray(dets).reshape(-1, 6)
        per_scale.append(group_by_class(to_image_coords(dets[dets[:, 4] > 0], meta, scale), num_classes))
    return merge_outputs(per_scale, num_classes, soft_nms, max_per_image)


def coco_records(image_id, per_class, category_ids):
    """COCO detection-result dicts (bbox [x, y, w, h], original category id) for one image."""
    records = []
    for j, boxes in enumerate(per_class):
        cat = int(category_ids[j])
        for x1, y1, x2, y2, score in boxes.tolist():
            records.append({"image_id": int(image_id), "category_id": cat,
                            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                            "score": round(score, 5)})
    return records
