import math

import numpy as np
import pytest

from monai_ceph.analysis import ISBI2015_CLASSIFICATION, Interval, Measurement, classify, get_measurement

# the ISBI 2015 challenge's thresholds (Wang et al. 2016): (measure, lower, upper, below, normal, above)
BOUNDARIES = [
    ("ANB", 3.2, 5.7, "class III", "class I", "class II"),
    ("SNB", 74.6, 78.7, "retrognathic mandible", "normal", "prognathic mandible"),
    ("SNA", 79.4, 83.2, "retrognathic maxilla", "normal", "prognathic maxilla"),
    ("ODI", 68.4, 80.5, "open bite tendency", "normal", "deep bite tendency"),
    ("APDI", 77.6, 85.2, "class II tendency", "normal", "class III tendency"),
    ("FHI", 0.65, 0.75, "long face tendency", "normal", "short face tendency"),
    ("FMA", 26.8, 31.4, "low angle tendency", "normal", "high angle tendency"),
]
EPS = 1e-9


def test_the_eight_isbi_measures():
    assert ISBI2015_CLASSIFICATION == ("SNA", "SNB", "ANB", "ODI", "APDI", "FHI", "FMA", "MW")


@pytest.mark.parametrize("name, lo, hi, below, normal, above", BOUNDARIES)
def test_isbi_thresholds_at_their_boundaries(name, lo, hi, below, normal, above):
    values = [lo - EPS, lo, (lo + hi) / 2, hi, hi + EPS]
    assert [classify({name: v})[name] for v in values] == [below, normal, normal, normal, above]


def test_modified_wits_four_classes():
    cases = {-EPS: "anterior cross bite", 0.0: "edge to edge", 1.0: "edge to edge", 2 - EPS: "edge to edge",
             2.0: "normal", 4.5: "normal", 4.5 + EPS: "large overjet"}  # fmt: skip
    assert {v: classify({"MW": v})["MW"] for v in cases} == cases


def test_textbook_classes_from_the_norm():
    # FH-MP norm 25 +- 5
    got = [classify({"FH-MP": v})["FH-MP"] for v in (20 - EPS, 20.0, 30.0, 30 + EPS)]
    assert got == ["decreased", "normal", "normal", "increased"]
    assert "AB-MP" not in classify({"AB-MP": 70.0})  # no norm, no classes
    assert classify({"SNA": math.nan, "FH-MP": np.float32(25.0)}) == {"SNA": "undetermined", "FH-MP": "normal"}
    with pytest.raises(KeyError, match="unknown measurement 'XYZ'"):
        classify({"XYZ": 1.0})


def test_interval_text():
    assert 0.0 in Interval("[0, 2)") and 2.0 not in Interval("[0, 2)") and 1e300 in Interval("(4.5, inf)")
    for bad in ("0, 2", "[2, 0]", "[a, 1]"):
        with pytest.raises(ValueError, match="interval"):
            Interval(bad)


def test_declaration_errors():
    with pytest.raises(ValueError, match="overlap"):
        Measurement("X", "", (), "distance", "mm", ("S", "N"), classes=(("a", "[0, 2]"), ("b", "[2, 3]")))
    with pytest.raises(ValueError, match="takes 3 points"):
        Measurement("X", "", (), "vertex_angle", "deg", ("S", "N"))
    with pytest.raises(ValueError, match="unknown kind"):
        Measurement("X", "", (), "area", "mm", ())
    with pytest.raises(ValueError, match="unit"):
        Measurement("X", "", (), "distance", "cm", ("S", "N"))
    assert get_measurement("MW").norm_text() == "[2, 4.5]" and get_measurement("FH-MP").norm_text() == "25 ± 5"
