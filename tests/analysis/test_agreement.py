import math

import numpy as np
import pytest

from monai_ceph.analysis import agreement, cohen_kappa, confusion_matrix


def test_cohen_kappa_hand_computed():
    # 50 cases: raters agree on 20 + 15; marginals (25, 25) and (30, 20): p_o = 0.7, p_e = 0.5
    m = np.array([[20, 5], [10, 15]])
    assert cohen_kappa(m) == pytest.approx((0.7 - 0.5) / 0.5)
    assert cohen_kappa(np.eye(3) * 4) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(np.zeros((2, 2)))) and math.isnan(cohen_kappa(np.array([[5, 0], [0, 0]])))


def test_confusion_matrix_rows_are_ground_truth():
    m = confusion_matrix(["a", "b", "b"], ["a", "a", "b"], ["a", "b"])
    np.testing.assert_array_equal(m, [[1, 1], [0, 1]])
    with pytest.raises(ValueError, match=r"classes \['c'\]"):
        confusion_matrix(["c"], ["a"], ["a", "b"])


def test_agreement_values():
    pred = [{"ANB": a, "S-N": s} for a, s in ((4.0, 70.0), (6.0, 72.0), (2.0, math.nan), (1.0, 71.0))]
    gt = [{"ANB": a, "S-N": s} for a, s in ((5.0, 71.0), (5.0, 71.0), (2.5, 70.0), (math.nan, 71.0))]
    report = agreement(pred, gt)
    anb = report["ANB"]
    assert anb["n"] == 3 and anb["mae"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    # classes (pred, gt): (class I, class I), (class II, class I), (class III, class III)
    assert anb["accuracy"] == pytest.approx(200 / 3)
    assert anb["confusion"]["labels"] == ["class I", "class II", "class III"]
    assert anb["confusion"]["matrix"] == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    p_e = (1 * 2 + 1 * 0 + 1 * 1) / 9
    assert anb["kappa"] == pytest.approx((2 / 3 - p_e) / (1 - p_e))
    sn = report["S-N"]
    assert sn["n"] == 3 and sn["mae"] == pytest.approx(2 / 3) and sn["unit"] == "mm"  # |70-71|, |72-71|, |71-71|
    assert agreement([{"AB-MP": 1.0}], [{"AB-MP": 3.0}])["AB-MP"] == {"unit": "deg", "n": 1, "mae": 2.0}
    empty = agreement([{"ANB": math.nan}], [{"ANB": 1.0}])["ANB"]
    assert empty["mae"] is None and empty["accuracy"] is None and empty["kappa"] is None
    with pytest.raises(ValueError, match="2 predicted and 1 ground-truth"):
        agreement(pred[:2], gt[:1])
