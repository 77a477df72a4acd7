"""Drawing: class colours from color_list (RGB -> BGR), score threshold, ground truth by category id."""
import numpy as np

from src.visual import class_color, draw_detections, draw_ground_truth, save_image

COLORS = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]  # RGB


def test_class_colours_are_bgr_and_cycle():
    assert class_color(0, COLORS) == (0, 0, 255) and class_color(2, COLORS) == (255, 0, 0)
    assert class_color(4, COLORS) == class_color(1, COLORS)


def test_detections_below_the_threshold_are_not_drawn():
    image = np.zeros((120, 160, 3), np.uint8)
    per_class = [np.array([[20, 30, 80, 90, 0.9]], np.float32), np.array([[100, 40, 140, 100, 0.2]], np.float32)]
    out = draw_detections(image, per_class, ["a", "b"], COLORS, score_thresh=0.3)
    assert not image.any()                                    # the input is left alone
    assert tuple(out[60, 20]) == (0, 0, 255)                   # left edge of class 0's box, red in BGR
    assert not out[70, 100:141].any() and not out[100, 100:141].any()  # class 1 scored below the threshold
    low = draw_detections(image, per_class, ["a", "b"], COLORS, score_thresh=0.1)
    assert tuple(low[70, 140]) == (0, 255, 0)


def test_ground_truth_drawn_in_its_class_colour(tmp_path):
    image = np.zeros((100, 100, 3), np.uint8)
    anns = [{"category_id": 41, "bbox": [10, 20, 50, 60], "iscrowd": 0}, {"category_id": 99, "bbox": [0, 0, 5, 5]}]
    out = draw_ground_truth(image, anns, [3, 41], ["x", "y"], COLORS)
    assert tuple(out[50, 10]) == (0, 255, 0)                   # category 41 is class 1: green
    path = save_image(str(tmp_path / "sub" / "gt.png"), out)
    assert (tmp_path / "sub" / "gt.png").stat().st_size > 0 and path.endswith("gt.png")
