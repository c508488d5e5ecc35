import math

import numpy as np
import pytest
import torch

from monai.transforms import Compose

from monai_ceph.analysis import (
    CephalometricMeasurements,
    CephalometricMeasurementsd,
    CephalometricMeasurementsD,
    CephalometricMeasurementsDict,
    measure,
)

TYPES = (np.asarray, torch.as_tensor)


@pytest.mark.parametrize("as_type", TYPES)
def test_array_transform(layout, as_type):
    t = CephalometricMeasurements(names=["SNA", "S-N"])
    values, classes = t(as_type(layout()), as_type(np.array([0.1, 0.1])))
    assert values == pytest.approx(measure(layout(), 0.1, names=["SNA", "S-N"]))
    assert set(classes) == {"SNA", "S-N"} and t.reasons == {}


@pytest.mark.parametrize("as_type", TYPES)
def test_dictionary_transform_on_a_postprocessed_item(layout, as_type):
    pred, gt = layout(), layout(A=(142, 152))
    item = {"pred_landmarks": as_type(pred), "landmarks": as_type(gt), "spacing": as_type(np.array([0.1, 0.1]))}
    out = Compose([CephalometricMeasurementsd(keys="pred_landmarks", reasons_keys="reasons")])(item)
    assert out["measurements"] == pytest.approx(measure(pred, 0.1), nan_ok=True)
    assert out["classes"]["ANB"] in ("class I", "class II", "class III")
    assert out["reasons"]["IMPA"] == "landmark LIA is not in the isbi2015 landmark set"
    assert out["pred_landmarks"] is item["pred_landmarks"]  # inputs untouched

    both = CephalometricMeasurementsd(
        keys=["pred_landmarks", "landmarks"],
        measurements_keys=["measurements", "gt_measurements"],
        classes_keys=["classes", "gt_classes"],
    )(item)
    assert both["gt_measurements"]["SNA"] > both["measurements"]["SNA"]  # A moved forward
    assert both["gt_measurements"]["SNB"] == pytest.approx(both["measurements"]["SNB"])


def test_missing_ground_truth_and_keys(layout):
    t = CephalometricMeasurementsd(keys=["pred_landmarks", "landmarks"], measurements_keys=["m", "gm"],
                                   classes_keys=["c", "gc"], allow_missing_keys=True)  # fmt: skip
    out = t({"pred_landmarks": layout(), "landmarks": None, "spacing": [0.1, 0.1]})
    assert out["gm"] is None and out["gc"] is None and math.isfinite(out["m"]["S-N"])
    assert "gm" not in t({"pred_landmarks": layout(), "spacing": [0.1, 0.1]})
    with pytest.raises(KeyError, match="spacing key 'spacing'"):
        CephalometricMeasurementsd()({"pred_landmarks": layout()})
    with pytest.raises(ValueError, match="key 'pred_landmarks': got 18 landmarks"):
        CephalometricMeasurementsd()({"pred_landmarks": layout()[:18], "spacing": [0.1, 0.1]})
    with pytest.raises(ValueError, match="repeat"):
        CephalometricMeasurementsd(keys=["pred_landmarks", "landmarks"])
    no_spacing = CephalometricMeasurementsd(spacing_key=None)({"pred_landmarks": layout()})
    assert math.isnan(no_spacing["measurements"]["S-N"]) and math.isfinite(no_spacing["measurements"]["SNA"])


def test_aliases():
    assert CephalometricMeasurementsD is CephalometricMeasurementsDict is CephalometricMeasurementsd
