import numpy as np
import pytest

from monai_ceph.data import (
    AARIZ,
    AARIZ_TO_ISBI2015,
    ISBI2015,
    LandmarkSet,
    get_landmark_set,
    map_landmarks,
    match_landmark,
)


def test_sizes_and_order():
    assert len(ISBI2015) == 19 and len(AARIZ) == 29
    # the README's order of the ISBI 2015 CSV columns
    assert ISBI2015.abbreviations[:4] == ("S", "N", "Or", "Po") and ISBI2015.abbreviations[-1] == "Ar"
    assert ISBI2015.index("Pog'") == 15 and ISBI2015.index("PNS") == 16


def test_aariz_to_isbi_mapping_names_the_same_landmarks():
    assert len(AARIZ_TO_ISBI2015) == 19
    for i, j in enumerate(AARIZ_TO_ISBI2015):
        assert AARIZ.abbreviations[j] == ISBI2015.abbreviations[i]
    points = np.arange(29 * 2, dtype=float).reshape(29, 2)
    mapped = np.asarray(map_landmarks(points, "aariz", "isbi2015"))
    np.testing.assert_array_equal(mapped, points[list(AARIZ_TO_ISBI2015)])


def test_map_landmarks_errors():
    with pytest.raises(ValueError, match="expected 19 points"):
        map_landmarks(np.zeros((18, 2)), ISBI2015, AARIZ)
    with pytest.raises(KeyError, match="Pn"):
        map_landmarks(np.zeros((19, 2)), ISBI2015, AARIZ)  # ISBI lacks pronasale


@pytest.mark.parametrize(
    "label, index",
    [("S", 0), ("sella", 0), ("SELLA", 0), (" Nasion ", 1), ("Pog'", 15), ("Pog`", 15), ("pog\u2019", 15),
     ("Soft tissue pogonion", 15), ("Pog", 6), ("li", 13), ("LIT", 10)],
)
def test_match_landmark(label, index):
    assert match_landmark("isbi2015", label) == index


def test_match_landmark_unknown():
    with pytest.raises(KeyError, match="Pn"):
        match_landmark(ISBI2015, "Pn")


def test_groups_cover_every_landmark_once():
    for lms in (ISBI2015, AARIZ):
        flat = sorted(i for g in lms.group_indices for i in g)
        assert flat == list(range(len(lms)))


def test_get_landmark_set():
    assert get_landmark_set("ISBI2015") is ISBI2015
    assert get_landmark_set(AARIZ) is AARIZ
    with pytest.raises(ValueError, match="unknown landmark set"):
        get_landmark_set("hand")


def test_invalid_set_definitions():
    with pytest.raises(ValueError, match="duplicate"):
        LandmarkSet("x", ("A", "A"), ("a", "b"))
    with pytest.raises(ValueError, match="abbreviations for"):
        LandmarkSet("x", ("A",), ("a", "b"))
    with pytest.raises(ValueError, match="groups"):
        LandmarkSet("x", ("A", "B"), ("a", "b"), groups={"g": ("A",)})
