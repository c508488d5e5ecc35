import math

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    DICOM_SUFFIXES,
    ISBI2015,
    LandmarkCollector,
    LandmarkFileError,
    MissingLandmarkWarning,
    SpacingError,
    is_dicom,
    landmarks_from_json,
    landmarks_to_json,
    parse_landmark,
    points_from_json,
    points_to_json,
    resolve_spacing,
)


def test_collector_matches_names_refuses_repeats_and_warns_on_missing():
    collector = LandmarkCollector(ISBI2015, "a.json")
    collector.put(collector.index("Sella", "a.json [0]"), (1.0, 2.0), "a.json [0]")
    collector.put(collector.index("pog`", "a.json [1]"), None, "a.json [1]")  # named, not placed
    with pytest.raises(LandmarkFileError, match=r"a.json \[2\]: landmark 'S' already given at a.json \[0\]"):
        collector.put(collector.index("s", "a.json [2]"), (3.0, 4.0), "a.json [2]")
    with pytest.raises(LandmarkFileError, match=r"a.json \[3\]: 'Q' is not a landmark of the isbi2015 set"):
        collector.index("Q", "a.json [3]")
    with pytest.warns(MissingLandmarkWarning, match=r"a.json: no point for \['N', .*\"Pog'\""):
        landmarks = collector.result()
    assert landmarks.shape == (19, 2) and landmarks[0].tolist() == [1.0, 2.0] and np.isnan(landmarks[1:]).all()


@pytest.mark.parametrize("value, expected", [
    ([1, 2.5], (1.0, 2.5)), (None, None), ([None, None], None), (np.array([3.0, 4.0]), (3.0, 4.0)), (("5", 6), (5.0, 6.0)),
])
def test_parse_landmark(value, expected):
    assert parse_landmark(value, "x") == expected


@pytest.mark.parametrize("value, match", [
    ([1, None], "'x' and 'y' must both be numbers or both null"),
    ([1, 2, 3], r"expected \[x, y\] or null, got \[1, 2, 3\]"),
    ("12", r"expected \[x, y\] or null, got '12'"),
    ({"x": 1, "y": 2}, r"expected \[x, y\] or null"),
    ([1, math.nan], "y: coordinate nan is not finite"),
    ([True, 1], "x: coordinate True is not a number"),
])
def test_parse_landmark_refuses(value, match):
    with pytest.raises(LandmarkFileError, match="e.json entry 4.*" + match):
        parse_landmark(value, "e.json entry 4")


def test_json_round_trip_writes_null_for_nan_and_old_names_warn():
    landmarks = np.array([[1.5, 2.0], [np.nan, np.nan]])
    assert landmarks_to_json(landmarks) == [[1.5, 2.0], [None, None]]
    np.testing.assert_array_equal(landmarks_from_json([[1.5, 2], None]), landmarks)
    assert landmarks_from_json([]).shape == (0, 2)
    with pytest.raises(LandmarkFileError, match=r"item 3 landmarks\[1\]: expected"):
        landmarks_from_json([[1, 2], [1, 2, 3]], "item 3 landmarks")
    with pytest.warns(FutureWarning, match="use landmarks_to_json instead"):
        assert points_to_json(landmarks) == [[1.5, 2.0], [None, None]]
    with pytest.warns(FutureWarning, match="use landmarks_from_json instead"):
        np.testing.assert_array_equal(points_from_json([[1.5, 2], None]), landmarks)


def test_spacing_from_dicom_header_else_given_else_default(tmp_path, write_dicom):
    assert DICOM_SUFFIXES == (".dcm", ".dicom") and is_dicom("A.DICOM") and not is_dicom("a.png")
    dcm = write_dicom(tmp_path / "a.dcm", np.zeros((4, 6)), PixelSpacing=[0.2, 0.1])
    np.testing.assert_allclose(resolve_spacing(dcm, given=0.5, default=0.7), [0.1, 0.2])  # (row, col) -> (x, y)
    png = tmp_path / "b.png"
    Image.new("L", (6, 4)).save(png)
    np.testing.assert_allclose(resolve_spacing(png, given=[0.3, 0.4], default=0.7), [0.3, 0.4])
    np.testing.assert_allclose(resolve_spacing(png, default=0.7), [0.7, 0.7])
    with pytest.raises(SpacingError, match=r"b.png: the image carries no pixel spacing; pass spacing="):
        resolve_spacing(png)
    with pytest.raises(SpacingError, match=r"label.json: no spacing here; pass spacing="):
        resolve_spacing(png, where="label.json", missing="no spacing here")
    with pytest.raises(SpacingError, match=r"b.png: pixel spacing -1 must be finite and > 0"):
        resolve_spacing(png, default=-1)
