"""WhileUprightd: the cephalometric measurements of a turned radiograph's landmarks equal those of the upright
one (signed angles included), and the landmarks come back to the image as given exactly."""

import numpy as np
import pytest
import torch

from monai.data import MetaTensor

from monai_ceph.analysis import CephalometricMeasurementsd
from monai_ceph.transforms.spatial import (
    ORIENTATIONS,
    WhileUprightD,
    WhileUprightd,
    WhileUprightDict,
    from_upright,
    transform_points,
    upright_matrix,
)

UPRIGHT_SHAPE = (1935, 2400)  # an ISBI radiograph, (x, y)
# ISBI 2015 Test1 image 289 (senior annotator), source pixels (x, y): the profile faces right
POINTS = torch.tensor(
    [[797, 1034], [1399, 908], [1298, 1174], [588, 1245], [1483, 1508], [1428, 1778], [1405, 1950], [1331, 2032],
     [1393, 2006], [764, 1783], [1488, 1629], [1531, 1662], [1638, 1553], [1605, 1771], [1579, 1437], [1499, 1973],
     [1009, 1425], [1452, 1397], [686, 1336]], dtype=torch.float64)
SIGNED = ("NA-APog", "AB-NPog", "U1-APog", "FH-PP")


def _item(name, spacing=(0.1, 0.12)):
    shape = from_upright(torch.zeros(UPRIGHT_SHAPE), name).shape
    given = transform_points(POINTS, torch.linalg.inv(upright_matrix(name, shape)))
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"spatial_shape": np.asarray(shape)})
    quarter = ORIENTATIONS[name][0] % 2 == 1
    return {"pred_landmarks": given, "spacing": torch.tensor(spacing[::-1] if quarter else spacing),
            "image": image, "orientation": name}


def _values(item):
    return {k: float(v) for k, v in item["measurements"].items() if np.isfinite(float(v))}


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_measurements_of_a_turned_radiograph_are_the_upright_ones(name):
    measure = CephalometricMeasurementsd(keys="pred_landmarks", spacing_key="spacing", landmark_set="isbi2015")
    reference = _values(measure(_item("as given")))
    assert set(SIGNED) <= set(reference) and any(reference[k] < 0 for k in SIGNED)
    item = _item(name)
    out = WhileUprightd(keys="pred_landmarks", transform=measure)(item)
    values = _values(out)
    assert values.keys() == reference.keys()
    for key, value in reference.items():
        assert values[key] == pytest.approx(value, abs=1e-6), (name, key)
    np.testing.assert_allclose(np.asarray(out["pred_landmarks"]), np.asarray(item["pred_landmarks"]), atol=1e-9)
    assert torch.equal(out["spacing"], item["spacing"])


def test_an_item_without_an_orientation_goes_straight_through():
    seen = []
    transform = WhileUprightd(keys="pred_landmarks", transform=lambda d: seen.append(d) or d)
    item = {"pred_landmarks": POINTS.clone(), "spacing": torch.tensor([0.1, 0.1])}
    out = transform(item)
    assert torch.equal(out["pred_landmarks"], POINTS) and torch.equal(seen[0]["pred_landmarks"], POINTS)
    assert WhileUprightD is WhileUprightDict is WhileUprightd


def test_a_turned_item_without_its_source_size_is_refused():
    item = _item("rotated 90")
    item["image"] = torch.zeros(1, 4, 4)
    with pytest.raises(ValueError, match="no source 'spatial_shape'"):
        WhileUprightd(keys="pred_landmarks", transform=lambda d: d)(item)
