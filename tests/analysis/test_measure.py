import math
import warnings

import numpy as np
import pytest
import torch

from monai_ceph.analysis import (
    MEASUREMENTS,
    GeometryWarning,
    classify,
    determinable_measurements,
    measure,
    measure_with_reasons,
)
from monai_ceph.data import AARIZ, ISBI2015

TYPES = (np.asarray, torch.as_tensor)


def polar(origin, length, degrees):
    """origin + length * (cos, sin) of an image-frame angle (y down)."""
    t = math.radians(degrees)
    return (origin[0] + length * math.cos(t), origin[1] + length * math.sin(t))


def hand_profile(layout):
    """S-N horizontal, A and B at known angles from N, FH horizontal, palatal plane 2 deg down anteriorly,
    A-B and N-Pog vertical, mandibular plane 25 deg to FH, incisors 3 mm apart horizontally."""
    n = (10.0, 0.0)
    return layout(
        S=(0.0, 0.0), N=n,
        A=(10.0, 5.0), B=(10.0, 9.0),  # A-B vertical under N: SNA = SNB = 90
        Pog=(10.0, 12.0), Po=(-5.0, 3.0), Or=(8.0, 3.0),
        PNS=(0.0, 5.0), ANS=polar((0.0, 5.0), 9.0, 2.0),
        Go=(0.0, 10.0), Me=polar((0.0, 10.0), 10.0, 25.0), Gn=polar((0.0, 10.0), 11.0, 25.0),
        UIT=(12.0, 8.0), LIT=(9.0, 8.0), Ar=(-1.0, 4.0),
    )  # fmt: skip


@pytest.mark.parametrize("as_type", TYPES)
def test_hand_computed_values(layout, as_type):
    v = measure(as_type(hand_profile(layout)), spacing=as_type(np.array([1.0, 1.0])))
    assert (v["SNA"], v["SNB"], v["ANB"]) == pytest.approx((90.0, 90.0, 0.0))
    assert v["FH-PP"] == pytest.approx(2.0)  # ANS tips down: positive
    assert v["FH-MP"] == pytest.approx(25.0)
    assert v["FMA"] == v["SN-GoGn"] == pytest.approx(25.0)  # S-N is parallel to FH here
    assert v["AB-MP"] == pytest.approx(65.0)  # vertical A-B vs a mandibular plane 25 deg off horizontal
    assert v["ODI"] == pytest.approx(67.0)
    assert v["FH-NPog"] == pytest.approx(90.0) and v["AB-NPog"] == pytest.approx(0.0)
    assert v["APDI"] == pytest.approx(92.0)
    assert v["MW"] == pytest.approx(3.0)
    assert v["A-Nperp"] == pytest.approx(0.0) and v["Pog-Nperp"] == pytest.approx(0.0)
    assert v["FHI"] == pytest.approx(math.dist((0, 0), (0, 10)) / math.dist((10, 0), polar((0, 10), 10, 25)))  # S-Go / N-Me
    assert v["S-Go/N-Me"] == pytest.approx(100 * v["FHI"])
    assert v["S-N"] == pytest.approx(10.0)
    c = classify(v)
    assert c["ANB"] == "class III" and c["ODI"] == "open bite tendency" and c["APDI"] == "class III tendency"
    assert c["MW"] == "normal" and c["FMA"] == "low angle tendency"


def test_signs_follow_anatomy(layout):
    # A ahead of the facial plane: convex profile, positive angle of convexity and A-Nperp
    v = measure(layout(A=(150, 152)), spacing=0.1)
    w = measure(layout(A=(125, 152)), spacing=0.1)
    assert v["NA-APog"] > 0 > w["NA-APog"] and v["A-Nperp"] > w["A-Nperp"]
    assert v["ANB"] > w["ANB"]
    # lower incisor ahead of the upper one: a negative MW, an anterior cross bite
    v = measure(layout(UIT=(140, 171), LIT=(143, 170)), spacing=1.0)
    assert v["MW"] == pytest.approx(-math.dist((140, 171), (143, 170)))
    assert classify({"MW": v["MW"]})["MW"] == "anterior cross bite"


@pytest.mark.parametrize("as_type", TYPES)
def test_mirrored_profile_gives_the_same_values(layout, as_type):
    points = layout() * 10.0
    mirrored = points.copy()
    mirrored[:, 0] = 1934 - mirrored[:, 0]  # a 1935-pixel-wide radiograph flipped left-right: profile faces left
    spacing = np.array([0.1, 0.12])
    a = measure(as_type(points), as_type(spacing))
    b = measure(as_type(mirrored), as_type(spacing))
    finite = [k for k in a if not math.isnan(a[k])]
    assert len(finite) == len(determinable_measurements(ISBI2015))
    assert {k: b[k] for k in finite} == pytest.approx({k: a[k] for k in finite}, abs=1e-9)
    # signed measures really are signed, so the test would catch a mirror-blind sign
    assert a["FH-PP"] != pytest.approx(0) and a["AB-NPog"] != pytest.approx(0) and a["MW"] != pytest.approx(0)


def test_translation_and_spacing_scale(layout):
    points = layout()
    a = measure(points, 0.1)
    b = measure(points + 500.0, 0.1)
    c = measure(points * 2.0, 0.05)
    for k in a:
        if not math.isnan(a[k]):
            assert b[k] == pytest.approx(a[k]) and c[k] == pytest.approx(a[k])


def test_anisotropic_spacing_enters_the_angles(layout):
    # a 45-deg line in pixels is not 45 deg in mm when the x spacing is twice the y spacing
    points = layout(Po=(0, 0), Or=(10, 0), Go=(0, 0), Me=(10, 10))
    assert measure(points, (1.0, 1.0), names=["FH-MP"])["FH-MP"] == pytest.approx(45.0)
    assert measure(points, (2.0, 1.0), names=["FH-MP"])["FH-MP"] == pytest.approx(math.degrees(math.atan(0.5)))


def test_missing_landmark_propagates_nan(layout):
    points = layout()
    points[ISBI2015.index("A")] = np.nan
    values, reasons = measure_with_reasons(points, 0.1)
    for name in ("SNA", "ANB", "ODI", "APDI", "NA-APog", "AB-NPog", "AB-MP", "A-Nperp", "U1-APog"):
        assert math.isnan(values[name]), name
    assert reasons["SNA"] == "landmark A is missing"
    assert reasons["ANB"].startswith("SNA is NaN (landmark A is missing)")
    assert math.isfinite(values["SNB"]) and math.isfinite(values["FH-MP"]) and "SNB" not in reasons
    assert classify(values)["ANB"] == "undetermined"


def test_what_a_set_cannot_determine_is_nan_with_a_reason(layout, aariz_layout):
    values, reasons = measure_with_reasons(layout(), 0.1)
    assert math.isnan(values["IMPA"]) and reasons["IMPA"] == "landmark LIA is not in the isbi2015 landmark set"
    assert reasons["Wits"] == "landmark UMT, LMT is not in the isbi2015 landmark set"
    aariz = measure(aariz_layout(), 0.1, landmark_set="aariz")
    assert all(math.isfinite(aariz[n]) for n in determinable_measurements(AARIZ))
    assert set(determinable_measurements(AARIZ)) == {m.name for m in MEASUREMENTS}
    # the Tweed triangle closes: FMA + IMPA + FMIA = 180
    assert aariz["FH-MP"] + aariz["IMPA"] + aariz["FMIA"] == pytest.approx(180.0)
    # the same 19 landmarks give the same values in either set
    for name in determinable_measurements(ISBI2015):
        assert aariz[name] == pytest.approx(values[name]), name


def test_aariz_hand_computed(aariz_layout):
    # S-N horizontal; the upper incisor axis (apex -> tip) at 70 deg, the lower one at -60 deg (image frame)
    points = aariz_layout(
        S=(0, 0), N=(10, 0), UIA=(5, 5), UIT=polar((5, 5), 10, 70), LIA=(5, 20), LIT=polar((5, 20), 10, -60),
        A=(10, 8), B=(8, 14), UMT=(0, 10), LMT=(0, 12), UPM=(4, 10), LPM=(4, 12), Pn=(20, 5), Pog_=(16, 25),
        Ls=(18 - 2 * 20 / math.hypot(20, 4), 15 - 2 * 4 / math.hypot(20, 4)),  # 2 mm behind the E-line at (18, 15)
    )  # fmt: skip
    v = measure(points, 1.0, landmark_set="aariz")
    assert v["U1-SN"] == pytest.approx(110.0)  # N->S is 180 deg, the incisor axis 70 deg
    assert v["U1-L1"] == pytest.approx(130.0)  # tips to apices: 250 deg and 120 deg
    assert v["Wits"] == pytest.approx(2.0)  # horizontal occlusal plane: AO - BO = 10 - 8
    assert v["Ls-E"] == pytest.approx(-2.0)


def test_degenerate_geometry_is_nan_with_a_warning(layout):
    points = layout(Po=(60, 121), Or=(60, 121))  # FH undefined
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values, reasons = measure_with_reasons(points, 0.1)
    assert all(w.category is GeometryWarning for w in caught)
    assert any("'FH-MP': degenerate geometry: the first line's points coincide" in str(w.message) for w in caught)
    assert math.isnan(values["FH-MP"]) and "degenerate geometry" in reasons["FH-MP"]
    assert math.isnan(values["APDI"]) and math.isfinite(values["SNA"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(measure(layout(N=(135, 199), Pog=(135, 199)), 0.1)["FH-NPog"])
    assert caught and all(w.category is GeometryWarning for w in caught)


def test_spacing_missing_or_not_positive(layout):
    points = layout()
    for spacing in (None, 0.0, (-0.1, 0.1), (float("nan"), 0.1)):
        values, reasons = measure_with_reasons(points, spacing)
        assert math.isnan(values["S-N"]) and "an mm measurement" in reasons["S-N"]
        assert math.isfinite(values["SNA"]) and math.isfinite(values["FHI"]) and math.isfinite(values["ODI"])
    with pytest.raises(ValueError, match=r"mm measurements \['S-N', 'MW'\]"):
        measure(points, None, names=["SNA", "S-N", "MW"])
    assert measure(points, None, names=["SNA"]) == pytest.approx(measure(points, 0.1, names=["SNA"]))


def test_bad_input_is_a_clear_error(layout):
    with pytest.raises(ValueError, match="got 18 landmarks but the isbi2015 landmark set has 19"):
        measure(layout()[:18], 0.1)
    with pytest.raises(ValueError, match="got 19 landmarks but the aariz landmark set has 29"):
        measure(layout(), 0.1, landmark_set="aariz")
    with pytest.raises(ValueError, match="unknown landmark set 'cepha29'"):
        measure(layout(), 0.1, landmark_set="cepha29")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        measure(np.zeros((19, 3)), 0.1)
    with pytest.raises(KeyError, match="unknown measurement 'SNX'"):
        measure(layout(), 0.1, names=["SNX"])
    with pytest.raises(ValueError, match="3 values"):
        measure(layout(), (0.1, 0.1, 0.1))


def test_real_isbi_ground_truth(isbi_dir):
    from monai_ceph.data import load_isbi2015

    records = {r.id: r for r in load_isbi2015(isbi_dir, "senior")}
    for image_id in ("001", "151", "301"):
        r = records[image_id]
        v = measure(r.landmarks, r.spacing)
        p = {a: r.landmarks[ISBI2015.index(a)] * 0.1 for a in ISBI2015.abbreviations}

        def angle(a, o, b):
            u, w = p[a] - p[o], p[b] - p[o]
            return math.degrees(math.acos(np.dot(u, w) / np.linalg.norm(u) / np.linalg.norm(w)))

        assert v["SNA"] == pytest.approx(angle("S", "N", "A")) and v["SNB"] == pytest.approx(angle("S", "N", "B"))
        assert v["ANB"] == pytest.approx(v["SNA"] - v["SNB"])
        assert v["FHI"] == pytest.approx(np.linalg.norm(p["S"] - p["Go"]) / np.linalg.norm(p["N"] - p["Me"]))
        assert v["Bjork sum"] == pytest.approx(v["N-S-Ar"] + v["S-Ar-Go"] + v["Ar-Go-Me"])
        # plausible adult-to-child ranges on real radiographs
        assert 70 < v["SNA"] < 95 and 20 < v["FH-MP"] < 45 and 370 < v["Bjork sum"] < 420
    # image 001: a Class III case (ANB below 3.2 deg; its lower incisor ahead of the upper one)
    c = classify(measure(records["001"].landmarks, 0.1))
    assert c["ANB"] == "class III" and c["MW"] == "anterior cross bite"
