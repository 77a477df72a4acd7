"""Test-time pre-processing (src/image.py): official geometry, padding to 32, and the affine round trip."""
import numpy as np
import pytest

from src.image import input_geometry, normalize_to_chw, preprocess_test_image, round_up
from src.post_process import to_image_coords

MEAN = [0.408, 0.447, 0.470]
STD = [0.289, 0.274, 0.278]


def test_round_up():
    assert [round_up(v) for v in (1, 32, 33, 680, 704)] == [32, 32, 64, 704, 704]


def test_keep_res_pads_like_the_official_code():
    geo = input_geometry(480, 640, 1.0, True, [680, 680])
    # (x | 31) + 1: 480 -> 512, and 640 (already a multiple) -> 672, as the official pre_process.
    assert (geo["inp_height"], geo["inp_width"]) == (512, 672)
    assert geo["c"] == [320.0, 240.0] and geo["s"] == [672.0, 512.0]
    assert (geo["out_height"], geo["out_width"]) == (128, 168)
    odd = input_geometry(333, 501, 0.5, True, [680, 680])
    assert (odd["new_height"], odd["new_width"]) == (166, 250)
    assert (odd["inp_height"], odd["inp_width"]) == (192, 256) and odd["c"] == [125.0, 83.0]


def test_fixed_resolution_pads_680_to_704_keeping_the_official_content_size():
    geo = input_geometry(300, 500, 1.0, False, [680, 680])
    assert (geo["inp_height"], geo["inp_width"]) == (704, 704)
    assert geo["s"][0] == pytest.approx(500 * 704 / 680) and geo["c"] == [250.0, 150.0]
    exact = input_geometry(300, 500, 0.75, False, [512, 512])
    assert exact["s"] == [500.0, 500.0] and exact["c"] == [187.5, 112.5]  # official: s = max(h, w)
    # The image still spans 680 input pixels, centred in 704.
    image = np.full((300, 500, 3), 255, np.uint8)
    inp, meta = preprocess_test_image(image, 1.0, False, [680, 680], [0, 0, 0], [1, 1, 1])
    cols = np.nonzero(inp[0, 0].max(axis=0) > 0.5)[0]
    assert inp.shape == (1, 3, 704, 704) and meta["out_width"] == 176
    assert cols[0] == 12 and cols[-1] == 691


def test_normalisation_is_bgr_mean_std():
    image = np.array([[[10, 100, 200]]], np.uint8)
    out = normalize_to_chw(image, MEAN, STD)
    assert out.shape == (1, 3, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(3), (np.array([10, 100, 200]) / 255 - MEAN) / STD, rtol=1e-5)


@pytest.mark.parametrize("keep_res, scale, res", [(True, 1.0, None), (True, 0.75, None), (False, 1.0, [256, 256]),
                                                  (False, 0.75, [256, 256]), (False, 1.0, [200, 200])])
def test_affine_round_trip_of_a_drawn_box(keep_res, scale, res):
    """A box painted in the image, found in the network input, mapped back through post-processing."""
    height, width = 170, 230
    x1, y1, x2, y2 = 60, 40, 150, 110            # filled pixels x1..x2-1, y1..y2-1: the box [x1, x2) x [y1, y2)
    image = np.zeros((height, width, 3), np.uint8)
    image[y1:y2, x1:x2] = 255
    inp, meta = preprocess_test_image(image, scale, keep_res, res or [512, 512], [0, 0, 0], [1, 1, 1])
    assert inp.shape[2:] == (meta["out_height"] * 4, meta["out_width"] * 4)
    mask = inp[0, 0] > 0.5
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    found = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)  # input pixels
    dets = np.array([list(found / 4) + [0.9, 0]])                               # output-map coordinates
    back = to_image_coords(dets, meta, scale)[0, :4]
    pixel = max(height, width) / (res[1] if res else max(height, width)) / scale  # image pixels per input pixel
    np.testing.assert_allclose(back, [x1, y1, x2, y2], atol=1.01 * pixel)
