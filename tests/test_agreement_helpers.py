"""tests/agreement.py: the tie rule accepts exactly the differences rounding can make."""
import numpy as np
import pytest

from agreement import assert_detections_agree, assert_records_agree, neighbour_margin


def _maps():
    """Two classes on a 6x6 map; class 0 has peaks at (1, 1) and (4, 4), and (1, 2) ties (1, 1) to 1e-7."""
    heat = np.full((2, 6, 6), 0.1)
    heat[0, 1, 1], heat[0, 1, 2] = 0.6, 0.6 - 1e-7
    heat[0, 4, 4] = 0.8
    heat[1, 3, 0] = 0.5
    reg = np.full((2, 6, 6), 0.25)
    return heat, reg


def _det(y, x, score, cls, size=2.0):
    cx, cy = x + 0.25, y + 0.25
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, score, cls]


def _lists(*extra):
    """Highest score first, one zero-score padding row at the end (a map with fewer peaks than K)."""
    rows = sorted([_det(4, 4, 0.8, 0), _det(3, 0, 0.5, 1)] + list(extra), key=lambda d: -d[4])
    return np.array(rows + [_det(0, 5, 0.0, 1)])


def test_margins():
    heat, _ = _maps()
    assert neighbour_margin(heat, 0, 4, 4) == pytest.approx(0.7)
    assert neighbour_margin(heat, 0, 1, 2) == pytest.approx(-1e-7)


def test_identical_lists_agree_and_too_few_rows_do_not():
    heat, reg = _maps()
    dets = _lists(_det(1, 1, 0.6, 0))
    assert assert_detections_agree(dets, dets.copy(), lambda: (heat, reg), min_matched=3).matched == 3
    with pytest.raises(AssertionError, match="only 3 detections"):
        assert_detections_agree(dets, dets.copy(), lambda: (heat, reg), min_matched=4)


def test_a_near_tie_peak_in_one_list_only_is_accepted():
    heat, reg = _maps()
    got = _lists(_det(1, 1, 0.6, 0))
    want = _lists(_det(1, 2, 0.6 - 1e-7, 0))  # the neighbour won the 3x3 maximum there
    result = assert_detections_agree(got, want, lambda: (heat, reg), min_matched=2)
    assert result.matched == 2 and len(result.ties) == 2


def test_a_clear_peak_missing_from_one_list_fails():
    heat, reg = _maps()
    with pytest.raises(AssertionError, match="no tie"):
        assert_detections_agree(_lists(), _lists()[[0, 2]], lambda: (heat, reg), min_matched=1)


def test_a_different_score_or_box_fails():
    heat, reg = _maps()
    moved = _lists()
    moved[0, [0, 2]] += 0.5  # the 0.8 peak
    with pytest.raises(AssertionError, match="no pixel"):
        assert_detections_agree(moved, _lists(), lambda: (heat, reg), min_matched=1)
    rescored = _lists()
    rescored[1, 4] += 1e-3  # the 0.5 peak
    with pytest.raises(AssertionError):
        assert_detections_agree(rescored, _lists(), lambda: (heat, reg), min_matched=1)


def _records(image_id, rows):
    return [{"image_id": image_id, "category_id": int(c), "bbox": [x, y, 4.0, 4.0], "score": s}
            for x, y, s, c in rows]


def test_records_without_twins_need_as_many_ties():
    rows = [(10.0 * k, 5.0, 0.9 - 0.01 * k, k % 2) for k in range(12)]
    want = _records(7, rows)
    assert assert_records_agree(_records(7, rows), want, {}) == 0
    changed = _records(7, rows[:9] + [(300.0, 300.0, 0.5, 0), (400.0, 300.0, 0.4, 0), (500.0, 300.0, 0.3, 1)])
    with pytest.raises(AssertionError, match="6 records without a twin, 1 ties"):
        assert_records_agree(changed, want, {7: 1})
    assert assert_records_agree(changed, want, {7: 4}) == 6
