"""bench/agreement.py: the detection comparison's tie rules, the degeneracy check, the head tolerances."""
import numpy as np
import pytest

from bench.agreement import (HEAD_RTOL, AgreementError, check_degeneracy, compare_detections, compare_heads,
                             tolerances)

SCORE_TOL, BOX_TOL = 1e-3, 1e-2


def _detections(k=20, seed=0):
    """(k, 6) [x1, y1, x2, y2, score, class], scores 0.9 down to 0.5 (gaps of 0.02), boxes 10 px in a 64 px map."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(10, 54, (k, 2))
    dets = np.concatenate([centres - 5, centres + 5, np.linspace(0.9, 0.5, k)[:, None],
                           rng.integers(0, 3, (k, 1))], axis=1)
    return dets.astype(np.float32)


def test_equal_lists_in_another_order_within_the_tolerances_match():
    want = _detections()
    got = want[::-1].copy()
    got[:, :4] += BOX_TOL / 2
    got[:, 4] -= SCORE_TOL / 2
    counts = compare_detections(want, got, SCORE_TOL, BOX_TOL)
    assert counts["matched"] == 20 and counts["near_ties"] == counts["below_cutoff"] == 0
    assert counts["max_score_diff"] == pytest.approx(SCORE_TOL / 2, rel=1e-3)


def test_a_neighbour_peak_of_equal_score_is_a_near_tie():
    want = _detections()
    got = want.copy()
    got[3, [0, 2]] += 1.0  # the peak one pixel to the right, the same score within the tolerance
    got[3, 4] += SCORE_TOL / 2
    counts = compare_detections(want, got, SCORE_TOL, BOX_TOL)
    assert counts["matched"] == 19 and counts["near_ties"] == 2  # once from each side


def test_the_last_places_may_differ():
    want = _detections()
    got = want.copy()
    got[-1, :4] += 20.0  # another detection in the last place, at the K-th score
    counts = compare_detections(want, got, SCORE_TOL, BOX_TOL)
    assert counts["below_cutoff"] == 2


@pytest.mark.parametrize("change, index", [
    (lambda d: d.__setitem__(5, (d[5] + 1) % 3), 0),        # another class
    (lambda d: d.__setitem__(4, d[4] - 3 * SCORE_TOL), 2),  # another score
    (lambda d: d.__setitem__(slice(0, 4), d[:4] + 3.0), 4),  # a box 3 px away
])
def test_a_changed_detection_above_the_cutoff_fails(change, index):
    want = _detections()
    got = want.copy()
    change(got[index])
    with pytest.raises(AgreementError, match="no match"):
        compare_detections(want, got, SCORE_TOL, BOX_TOL)


def test_dead_network_outputs_are_degenerate():
    """All scores sigmoid(-2.19) and zero-size boxes: what random weights with the initial BatchNorm give."""
    dead = _detections()
    dead[:, 4] = 0.1025
    dead[:, 2:4] = dead[:, 0:2]
    with pytest.raises(AgreementError, match="ties.*spread.*boxes under 1 px"):
        check_degeneracy(dead, SCORE_TOL)
    saturated = _detections()
    saturated[:, 4] = 1 - np.linspace(1e-5, 1e-4, 20)
    with pytest.raises(AgreementError, match="saturated"):
        check_degeneracy(saturated, 1e-6)
    with pytest.raises(AgreementError, match="offsets under 1 px"):
        check_degeneracy(_detections(), SCORE_TOL, offsets_px=[2.0, 0.1])
    assert "20 of 20 scores distinct" in check_degeneracy(_detections(), SCORE_TOL, offsets_px=[2.0, 1.5])


def test_head_tolerance_is_relative_to_each_heads_magnitude():
    heads = [np.array([[-8.0, 2.0]]), np.array([[30.0, 1.0]]), np.array([[0.5, -1.0]])]
    tol = tolerances(heads)
    assert tol["hm"] == pytest.approx(8 * HEAD_RTOL) and tol["score"] == pytest.approx(2 * HEAD_RTOL)
    assert tol["box"] == pytest.approx(15 * HEAD_RTOL + HEAD_RTOL)
    near = [h + 0.5 * tol[name] for h, name in zip(heads, ("hm", "wh", "reg"))]
    assert compare_heads(heads, near, tol)["wh"] == pytest.approx(0.5 * tol["wh"])
    far = [heads[0], heads[1] + 2 * tol["wh"], heads[2]]
    with pytest.raises(AgreementError, match="heads differ: wh"):
        compare_heads(heads, far, tol)
