"""Bad-input catalogue, shape lane: side files (a shape model, an uncertainty calibration) are checked when loaded;
each case asserts the ValueError, that the message names the file and the fault, and that the file is unchanged."""

import json
import math

import numpy as np
import pytest

from monai_ceph.shape import ShapeModel, UncertaintyCalibration
from monai_ceph.shape.array import CovarianceToSource


def _strict(text):
    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def model_file(tmp_path, synthetic_model):
    return synthetic_model.save(tmp_path / "shape_model.json")


def _edit(path, **changes):
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))  # json.dumps writes NaN / Infinity tokens, as a damaged file may hold
    return path.read_text()


@pytest.mark.parametrize("variances, fault", [
    (lambda v: [math.nan] + v[1:], "variances"),
    (lambda v: [-1.0] + v[1:], "variances"),
    (lambda v: [0.0] + v[1:], "mode variances must be > 0"),
    (lambda v: [math.inf] + v[1:], "variances must be finite"),
])
def test_a_shape_model_with_bad_variances_is_refused_naming_the_file(model_file, variances, fault):
    before = _edit(model_file, variances=variances(json.loads(model_file.read_text())["variances"]))
    with pytest.raises(ValueError, match=rf"shape_model.json: .*{fault}"):
        ShapeModel.load(model_file)
    assert model_file.read_text() == before


def test_a_shape_model_with_nan_or_skewed_components_is_refused(model_file):
    components = json.loads(model_file.read_text())["components"]
    _edit(model_file, components=[[math.nan] + components[0][1:]] + components[1:])
    with pytest.raises(ValueError, match=r"shape_model.json: bad shape model entry: components must be finite"):
        ShapeModel.load(model_file)
    _edit(model_file, components=[[2 * c for c in components[0]]] + components[1:])
    with pytest.raises(ValueError, match=r"shape_model.json: the components are not orthonormal"):
        ShapeModel.load(model_file)


def test_a_good_shape_model_still_loads_and_is_valid_json(model_file, synthetic_model):
    assert _strict(model_file.read_text())["format"]
    np.testing.assert_array_equal(ShapeModel.load(model_file).variances, synthetic_model.variances)


@pytest.fixture
def calibration_file(tmp_path):
    return UncertaintyCalibration(np.linspace(1.0, 2.0, 19), "isbi2015").save(tmp_path / "calibration.json")


@pytest.mark.parametrize("scales, fault", [
    ([math.inf] + [1.0] * 18, "calibration scales must be positive and finite"),
    ([math.nan] + [1.0] * 18, "calibration scales must be positive and finite"),
    ([1e6] + [1.0] * 18, r"calibration scales outside \[0.001, 1000\] \(landmark index, scale\): \[\(0, 1000000.0\)\]"),
    ([1e-5] * 19, r"calibration scales outside \[0.001, 1000\]"),
    ([1.0] * 18, "18 scales for the 19 landmarks of the isbi2015 set"),
])
def test_a_calibration_with_absurd_scales_is_refused_naming_the_file(calibration_file, scales, fault):
    before = _edit(calibration_file, scales=scales)
    with pytest.raises(ValueError, match=rf"calibration.json: .*{fault}"):
        UncertaintyCalibration.load(calibration_file)
    assert calibration_file.read_text() == before


def test_an_unnamed_calibration_of_the_wrong_length_is_refused_where_the_set_is_known(calibration_file):
    _edit(calibration_file, scales=[1.0] * 29, landmark_set=None)
    assert len(UncertaintyCalibration.load(calibration_file).scales) == 29  # nothing to check it against here
    with pytest.raises(ValueError, match=r"calibration.json: the uncertainty calibration has 29 scales, the model "
                                         r"predicts the 19 landmarks of the 'isbi2015' set"):
        CovarianceToSource(calibration_file, landmark_set="isbi2015")


def test_a_calibration_with_an_impossible_coverage_is_refused(calibration_file):
    _edit(calibration_file, coverage=math.inf)
    with pytest.raises(ValueError, match=r"calibration.json: bad calibration entry: coverage must be in \(0, 1\)"):
        UncertaintyCalibration.load(calibration_file)


def test_a_saved_calibration_is_valid_json(calibration_file):
    content = _strict(calibration_file.read_text())
    assert content["scales"] == pytest.approx(np.linspace(1.0, 2.0, 19).tolist())


def test_a_local_stage_calibration_loads(tmp_path):
    """The released two-stage calibration's scales are 21-25 (the local heatmaps are sharp): not absurd."""
    path = UncertaintyCalibration(np.linspace(21.0, 25.0, 19), "isbi2015").save(tmp_path / "local.json")
    np.testing.assert_allclose(UncertaintyCalibration.load(path).scales, np.linspace(21.0, 25.0, 19))
