"""src/image.py: affine geometry, Gaussian targets and the folded colour transform."""
import math

import cv2
import numpy as np
import pytest

from src import image as im

MEAN = [0.40789654, 0.44719302, 0.47026115]
STD = [0.28863828, 0.27408164, 0.27809835]
EIG_VAL = [0.2141788, 0.01817699, 0.00341571]
EIG_VEC = [[-0.58752847, -0.69563484, 0.41340352],
           [-0.5832747, 0.00994535, -0.81221408],
           [-0.56089297, 0.71832671, 0.41158938]]


def test_gaussian_radius_matches_hand_computation():
    # (h, w) = (10, 20), overlap 0.7. Case 3: a = 2.8, b = -42, c = -60:
    # (-42 + sqrt(42^2 + 4 * 2.8 * 60)) / 2 = (-42 + sqrt(2436)) / 2 = 3.677925...
    # Cases 1 and 2 give 28.77 and 55.69, so the minimum is case 3.
    assert im.gaussian_radius((10, 20), 0.7) == pytest.approx((-42 + math.sqrt(2436)) / 2, rel=1e-12)
    assert im.gaussian_radius((10, 20), 0.7) == pytest.approx(3.6779254, abs=1e-6)
    # (1, 1): case 3 has b = -2.8, 4ac = -4 * 2.8 * 0.3: (-2.8 + sqrt(11.2)) / 2 = 0.2733 (< 1.91, 3.67).
    assert im.gaussian_radius((1, 1), 0.7) == pytest.approx((-2.8 + math.sqrt(11.2)) / 2, rel=1e-12)


def test_draw_umich_gaussian_peak_extent_and_max_combine():
    hm = np.zeros((11, 11), np.float32)
    im.draw_umich_gaussian(hm, (5, 5), 2)
    assert hm[5, 5] == 1.0 and hm.max() == 1.0
    nz_y, nz_x = np.nonzero(hm)
    assert (nz_y.min(), nz_y.max(), nz_x.min(), nz_x.max()) == (3, 7, 3, 7)
    sigma = 5 / 6  # diameter / 6
    assert hm[3, 3] == pytest.approx(math.exp(-8 / (2 * sigma ** 2)), rel=1e-6)
    assert hm[5, 6] == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-6)
    before = hm.copy()
    im.draw_umich_gaussian(hm, (7, 5), 2, k=0.5)
    other = np.zeros_like(hm)
    im.draw_umich_gaussian(other, (7, 5), 2, k=0.5)
    assert np.array_equal(hm, np.maximum(before, other))
    assert hm[5, 5] == 1.0


def test_draw_umich_gaussian_clips_at_borders():
    hm = np.zeros((6, 8), np.float32)
    im.draw_umich_gaussian(hm, (0, 5), 3)
    assert hm[5, 0] == 1.0
    assert np.count_nonzero(hm) == 4 * 4  # x 0..3, y 2..5


def test_draw_msra_gaussian_peak_at_rounded_centre():
    hm = np.zeros((40, 50), np.float32)
    im.draw_msra_gaussian(hm, (10.6, 20.2), 2)
    assert hm[20, 11] == 1.0 and hm.max() == 1.0
    ys, xs = np.nonzero(hm)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (5, 17, 14, 26)  # +-3 sigma (+1 right)


def test_draw_dense_reg_writes_where_gaussian_dominates():
    hm = np.zeros((10, 10), np.float32)
    reg = np.zeros((2, 10, 10), np.float32)
    im.draw_umich_gaussian(hm, (3, 3), 1)
    im.draw_dense_reg(reg, hm, (3, 3), (7.0, 9.0), 1)
    assert np.array_equal(reg[0] != 0, hm > 0) and np.all(reg[0][hm > 0] == 7) and np.all(reg[1][hm > 0] == 9)
    stronger = hm.copy()
    stronger[3, 4] = 5.0  # another object dominates this pixel
    im.draw_dense_reg(reg, stronger, (3, 3), (1.0, 1.0), 1)
    assert reg[0, 3, 4] == 7 and reg[0, 3, 3] == 1


def test_get_border_official_rule():
    assert im.get_border(128, 640) == 128
    assert im.get_border(128, 256) == 64
    assert im.get_border(128, 100) == 32
    assert im.get_border(128, 1) == 0


def test_affine_maps_centre_and_scale_and_inverts():
    c, s = np.array([300.0, 200.0]), 400.0
    trans = im.get_affine_transform(c, s, 0, (128, 96))
    assert np.allclose(im.affine_transform(c, trans), [64, 48], atol=1e-4)
    # s source pixels map to the output width.
    assert np.allclose(im.affine_transform(c + [s / 2, 0], trans), [128, 48], atol=1e-4)
    inv = im.get_affine_transform(c, s, 0, (128, 96), inv=True)
    pts = np.array([[0, 0], [17.5, 80.25]], np.float32)
    assert np.allclose(im.affine_transform(im.affine_transform(pts, trans), inv), pts, atol=1e-3)


def test_affine_rotation_direction_and_box_hull():
    c = np.array([50.0, 50.0])
    trans = im.get_affine_transform(c, 100.0, 90, (100, 100))
    # rot=90: get_dir turns the source "up" vector (0, -s/2) into (s/2, 0), so the point right
    # of the centre maps above the output centre and the point left of it below.
    assert np.allclose(im.affine_transform([60.0, 50.0], trans), [50, 40], atol=1e-4)
    assert np.allclose(im.affine_transform([40.0, 50.0], trans), [50, 60], atol=1e-4)
    trans45 = im.get_affine_transform(c, 100.0, 45, (100, 100))
    hull = im.transform_boxes([[40, 40, 60, 60]], trans45)[0]
    half_diag = 10 * math.sqrt(2)
    assert np.allclose(hull, [50 - half_diag, 50 - half_diag, 50 + half_diag, 50 + half_diag], atol=1e-3)


def _step_by_step(img_u8, params):
    out = im.color_aug_reference(img_u8.astype(np.float32) / 255.0, params, EIG_VAL, EIG_VEC)
    return ((out - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)


@pytest.mark.parametrize("seed", range(8))
def test_folded_colour_matrix_equals_step_by_step(seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    params = im.sample_color_aug(rng)
    matrix = im.color_normalize_matrix(params, cv2.mean(img)[:3], EIG_VAL, EIG_VEC, MEAN, STD)
    folded = im.apply_pixel_matrix(img, matrix)
    expected = _step_by_step(img, params)
    assert folded.shape == (3, 37, 53) and folded.dtype == np.float32
    assert np.allclose(folded, expected, atol=2e-5)


def test_folded_colour_matrix_covers_every_op_order():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    for order in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        params = im.ColorAugParams(order, np.array([0.7, 1.3, 0.65]), np.array([0.05, -0.1, 0.2]))
        matrix = im.color_normalize_matrix(params, cv2.mean(img)[:3], EIG_VAL, EIG_VEC, MEAN, STD)
        assert np.allclose(im.apply_pixel_matrix(img, matrix), _step_by_step(img, params), atol=2e-5)


def test_plain_normalisation_matrix():
    img = np.array([[[0, 128, 255]]], np.uint8)
    matrix = im.color_normalize_matrix(None, None, None, None, MEAN, STD)
    expected = (np.array([0, 128, 255]) / 255.0 - MEAN) / STD
    assert np.allclose(im.apply_pixel_matrix(img, matrix)[:, 0, 0], expected, atol=1e-6)
