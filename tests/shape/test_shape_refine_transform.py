"""ShapeRefine / ShapeRefined (the bundle's refinement step), the calibration's landmark-set check, Spearman rho,
and the test-time-augmentation spread reaching the heatmap covariance."""

import math

import numpy as np
import pytest
import torch

from monai_ceph.inferers import TestTimeAugmentationInferer
from monai_ceph.shape import (
    LandmarkUncertainty,
    ShapeModel,
    ShapeRefine,
    ShapeRefined,
    UncertaintyCalibration,
    heatmap_covariance,
    spearman_rho,
)
from monai_ceph.transforms import GaussianHeatmapCodec

K = 6


@pytest.fixture(scope="module")
def model():
    """A Gaussian shape model of K points: a hexagon of radius 20 mm with 0.5 mm jitter per point."""
    rng = np.random.default_rng(0)
    angles = np.linspace(0, 2 * np.pi, K, endpoint=False)
    mean = 20 * np.stack([np.cos(angles), np.sin(angles)], -1) + 50
    return ShapeModel.fit(mean + rng.normal(0, 0.5, (200, K, 2))), mean


@pytest.mark.parametrize("wrap", [np.asarray, torch.as_tensor])
def test_shape_refine_moves_the_outlier_back_in_source_pixels(model, wrap):
    shape_model, mean = model
    spacing = np.array([0.5, 0.25])  # mm/px (x, y)
    px = mean / spacing
    moved = px.copy()
    moved[2] += [30.0, 0.0]  # 15 mm off in x
    cov = np.tile(np.eye(2) * 0.25, (K, 1, 1))  # SD 0.5 mm evidence
    out = ShapeRefine(shape_model)(wrap(moved), wrap(cov), wrap(spacing))
    assert type(out["landmarks"]) is type(wrap(moved)) and type(out["cov_mm"]) is type(wrap(cov))
    refined = np.asarray(out["landmarks"])
    assert out["flagged"].tolist() == [i == 2 for i in range(K)]
    np.testing.assert_allclose(refined[2] * spacing, mean[2], atol=1.5)  # back within 1.5 mm of 15 mm
    np.testing.assert_allclose(refined[[0, 1, 3, 4, 5]], px[[0, 1, 3, 4, 5]], atol=0.5 / 0.25)
    # the unrefined shape's scores: the moved point is the least plausible one (its pull on the alignment raises
    # its neighbours' too)
    assert np.argmax(out["landmark_distance"]) == 2 and out["landmark_distance"][2] > 2 * 3.03
    sigma = np.asarray(out["sigma_mm"])
    assert sigma[2] > 0.5 > sigma[0]  # from the shape alone vs evidence fused with the shape
    assert out["distance"] > 0


def test_shape_refined_keeps_what_it_replaced(model):
    shape_model, mean = model
    spacing = torch.tensor([1.0, 1.0])
    item = {"pred_landmarks": torch.as_tensor(mean, dtype=torch.float32), "spacing": spacing,
            "cov_mm": torch.eye(2).repeat(K, 1, 1), "sigma_mm": torch.ones(K)}
    out = ShapeRefined(shape_model=shape_model, landmark_set=None)(item)
    assert out["unrefined_pred_landmarks"] is item["pred_landmarks"] and out["unrefined_sigma_mm"] is item["sigma_mm"]
    assert not out["shape_flagged"].any() and out["shape_distance"].shape == (K,)
    np.testing.assert_allclose(out["pred_landmarks"].numpy(), mean, atol=0.5)
    with pytest.raises(KeyError, match="'cov_mm' is not in the data"):
        ShapeRefined(shape_model=shape_model)({"pred_landmarks": item["pred_landmarks"], "spacing": spacing})
    with pytest.raises(ValueError, match="needs a shape model"):
        ShapeRefined()


def test_shape_refine_refuses_another_landmark_set(tmp_path):
    isbi = ShapeModel(np.random.default_rng(1).normal(size=(19, 2)) * 30, np.zeros((0, 38)), [], 1.0, "isbi2015")
    path = isbi.save(tmp_path / "isbi.json")
    with pytest.raises(ValueError, match=r"isbi\.json: .*'isbi2015'.* not 'aariz'"):
        ShapeRefine(path, landmark_set="aariz")


def test_uncertainty_refuses_a_calibration_of_another_set(tmp_path):
    path = UncertaintyCalibration(np.ones(19), landmark_set="isbi2015").save(tmp_path / "calibration.json")
    with pytest.raises(ValueError, match=r"calibration\.json: .*'isbi2015' landmark set, the model predicts 'aariz'"):
        LandmarkUncertainty(calibration=path, landmark_set="aariz")
    assert LandmarkUncertainty(calibration=path, landmark_set="isbi2015").calibration.landmark_set == "isbi2015"


def test_spearman_rho():
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    # ties take the mean rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4)
    assert spearman_rho([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman_rho([1, 2, np.nan, 3, 4], torch.tensor([1, 2, 9, 3, 4.0])) == pytest.approx(1.0)
    assert math.isnan(spearman_rho([1, 1, 1], [1, 2, 3])) and math.isnan(spearman_rho([1, 2], [1, 2]))
    with pytest.raises(ValueError, match="one size"):
        spearman_rho([1, 2, 3], [1, 2])


def test_tta_spread_widens_the_heatmap_covariance():
    """A 'network' that always puts its blob at the same heatmap place: mapped back, the variants of scales
    (0.9, 1, 1.1) disagree by (p - c)(1/s - 1); the merged map's covariance is the variants' own plus the
    spread of their peaks (law of total covariance), and a consistent network has no spread."""
    codec = GaussianHeatmapCodec(sigma=2.0)
    size, point = (96, 96), torch.tensor([[70.0, 47.5]])
    blob = torch.logit(codec.encode(point, size).clamp(1e-6, 1 - 1e-6))[None]  # (1, 1, 96, 96) logits
    inputs = torch.zeros(1, 1, *size)
    scales = (0.9, 1.0, 1.1)
    merged = TestTimeAugmentationInferer(scales=scales)(inputs, lambda x: blob.expand(len(x), -1, -1, -1))[0]
    single = TestTimeAugmentationInferer(scales=(1.0,))(inputs, lambda x: blob.expand(len(x), -1, -1, -1))[0]
    peaks = torch.tensor([[47.5 + (70.0 - 47.5) / s, 47.5] for s in scales], dtype=torch.float64)
    radius = 16
    cov_single = heatmap_covariance(single, point.double(), radius, logits=True)[0]
    centre = codec.decode(merged, logits=True)[0].double()
    cov_merged = heatmap_covariance(merged, centre, radius, logits=True)[0]
    spread = ((peaks - centre) ** 2).mean(0)
    assert cov_merged[0, 0] > cov_single[0, 0] + 0.5 * spread[0]
    np.testing.assert_allclose(cov_merged[0, 0], cov_single[0, 0] + spread[0], rtol=0.15)
    np.testing.assert_allclose(cov_merged[1, 1], cov_single[1, 1], rtol=0.05)  # no spread along y
