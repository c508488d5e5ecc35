"""Bad-input catalogue, analysis lane: a film that is rotated or mirrored gives the same measurements, since they are
read in the anatomy's frame, not the image axes (signed angles and distances follow anterior and inferior)."""

import math
import warnings

import numpy as np
import pytest

from monai_ceph.analysis import anatomical_axes, determinable_measurements, measure, profile_facing
from monai_ceph.data import AARIZ, ISBI2015

# measure() of the TYPICAL profile (tests/analysis/conftest.py) at 0.1 mm/px, as the image-axis frame gave them
# before the anatomical frame: the profile is upright, so they were right and must not change
UPRIGHT_TYPICAL = {
    "SNA": 82.192199, "SNB": 80.018341, "ANB": 2.173857, "ODI": 69.574861, "APDI": 85.953164, "FHI": 0.64901,
    "FMA": 32.562201, "MW": 0.141421, "SN-GoGn": 32.562201, "FH-NPog": 88.023945, "NA-APog": 3.822888,
    "AB-NPog": -3.903467, "Y-axis": 61.45887, "U1-APog": 0.659319, "FH-MP": 28.137345, "AB-MP": 67.742176,
    "FH-PP": 1.832685, "A-Nperp": -0.020288, "Pog-Nperp": -0.352137, "ANS-Me": 6.118823, "N-S-Ar": 120.911717,
    "S-Ar-Go": 148.901501, "Ar-Go-Me": 125.920618, "Bjork sum": 395.733835, "S-N": 5.94138, "S-Ar": 3.17805,
    "Ar-Go": 4.130375, "Go-Me": 6.400781, "S-Go/N-Me": 64.900956, "IMPA": 91.013979, "FMIA": 60.848676,
    "U1-SN": 110.533397, "U1-L1": 122.718788, "Wits": 0.845848, "Ls-E": -0.107303, "Li-E": 0.214605,
    "Co-A": 7.970571, "Co-Gn": 10.666771,
}  # fmt: skip
# the same for ISBI 2015 image 001 (senior annotation), the real upright film
UPRIGHT_ISBI_001 = {
    "SNA": 84.049518, "SNB": 87.938754, "ANB": -3.889236, "ODI": 51.935754, "APDI": 99.023146, "FHI": 0.651425,
    "FMA": 33.227802, "MW": -1.16619, "FH-NPog": 87.440271, "NA-APog": -4.512713, "AB-NPog": 8.54389,
    "Y-axis": 65.225998, "U1-APog": 9.088535, "FH-MP": 35.119071, "AB-MP": 48.896769, "FH-PP": 3.038985,
    "A-Nperp": -5.13251, "Pog-Nperp": -5.267028, "ANS-Me": 72.397376, "Bjork sum": 396.416096, "S-N": 63.885288,
}  # fmt: skip


def _rotate(points, degrees, centre=(960.0, 1200.0)):
    t = math.radians(degrees)
    r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (points - centre) @ r.T + centre


ORIENTATIONS = {
    "rotated 90": lambda p: _rotate(p, 90),
    "rotated 135": lambda p: _rotate(p, 135),
    "rotated 180": lambda p: _rotate(p, 180),
    "rotated -90": lambda p: _rotate(p, -90),
    "flipped vertically": lambda p: p * [1, -1] + [0, 2399],
    "flipped horizontally": lambda p: p * [-1, 1] + [1934, 0],
    "flipped and rotated 30": lambda p: _rotate(p * [1, -1], 30),
}


def _assert_same(values, reference, what):
    assert values.keys() == reference.keys()
    for name, expected in reference.items():
        if math.isnan(expected):
            assert math.isnan(values[name]), (what, name)
        else:
            assert values[name] == pytest.approx(expected, abs=1e-6), (what, name, values[name], expected)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("landmark_set", [ISBI2015, AARIZ])
def test_a_rotated_or_mirrored_profile_gives_the_same_measurements(layout, orientation, landmark_set):
    points = layout(landmark_set) * 10.0  # TYPICAL is the mean ISBI profile / 10: back to ISBI pixels
    upright = measure(points, 0.1, landmark_set)
    _assert_same(measure(ORIENTATIONS[orientation](points), 0.1, landmark_set), upright, orientation)
    # the signed measures really are signed here, so a frame blind to the orientation would fail
    assert upright["AB-NPog"] < 0 < upright["NA-APog"] and upright["FH-PP"] > 0 and upright["U1-APog"] > 0


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_real_isbi_films_turned_or_mirrored_give_the_same_measurements(isbi_dir, orientation):
    from monai_ceph.data import read_isbi_csv

    films = read_isbi_csv(isbi_dir / "test1_senior.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Aariz-only measurements are NaN: not the point here
        for image_id in sorted(films)[:20]:
            upright = measure(films[image_id], 0.1)
            _assert_same(measure(ORIENTATIONS[orientation](films[image_id]), 0.1), upright, (image_id, orientation))


def test_upright_values_are_unchanged(layout, aariz_layout):
    _assert_same(measure(aariz_layout(), 0.1, "aariz"), UPRIGHT_TYPICAL, "typical aariz")
    isbi = measure(layout(), 0.1)
    determinable = determinable_measurements(ISBI2015)
    for name, expected in UPRIGHT_TYPICAL.items():
        if name in determinable:
            assert isbi[name] == pytest.approx(expected, abs=1e-6), name
        else:
            assert math.isnan(isbi[name]), name


def test_upright_isbi_values_are_unchanged(isbi_dir):
    from monai_ceph.data import read_isbi_csv

    values = measure(read_isbi_csv(isbi_dir / "train_senior.csv")["001"], 0.1)
    for name, expected in UPRIGHT_ISBI_001.items():
        assert values[name] == pytest.approx(expected, abs=1e-6), name


def test_the_anatomical_axes_follow_the_film(layout):
    points = layout()
    anterior, inferior = anatomical_axes(points)
    np.testing.assert_allclose(anterior, points[ISBI2015.index("Or")] - points[ISBI2015.index("Po")])
    np.testing.assert_allclose(inferior, points[ISBI2015.index("Me")] - points[ISBI2015.index("N")])
    assert profile_facing(points) == 1.0 and profile_facing(points * [-1, 1]) == -1.0
    points[ISBI2015.index("Po")] = np.nan  # no Frankfort horizontal: S->N gives the anterior direction
    np.testing.assert_allclose(anatomical_axes(points)[0], points[ISBI2015.index("N")] - points[ISBI2015.index("S")])


@pytest.mark.parametrize("spacing", [100.0, 0.0001])
def test_an_implausible_spacing_gives_no_mm_measurement(layout, spacing):
    from monai_ceph.analysis import measure_with_reasons

    values, reasons = measure_with_reasons(layout(), spacing)
    assert math.isnan(values["S-N"]) and "outside the range of a radiograph" in reasons["S-N"]
    assert values["SNA"] == pytest.approx(UPRIGHT_TYPICAL["SNA"], abs=1e-6)  # angles do not need it
    with pytest.raises(ValueError, match=r"spacing: pixel spacing .* outside the range of a radiograph .*needed for "
                                         r"the mm measurements \['S-N'\]"):
        measure(layout(), spacing, names=["SNA", "S-N"])
