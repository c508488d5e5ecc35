import math

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.utils import MetaKeys

from monai_ceph.shape import (
    LandmarkUncertainty,
    LandmarkUncertaintyd,
    UncertaintyCalibration,
    chi2_2_quantile,
    covariance_sigma,
    covariance_to_source,
    ellipse_coverage,
    heatmap_covariance,
)
from monai_ceph.transforms import GaussianHeatmapCodec

TYPES = (np.asarray, torch.as_tensor)


def _gaussian(size, centre, cov, amplitude=1.0):
    g0, g1 = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
    d = np.stack([g0 - centre[0], g1 - centre[1]], -1)
    return amplitude * np.exp(-0.5 * (d @ np.linalg.inv(cov) * d).sum(-1))


COVS = (np.array([[6.0, 2.0], [2.0, 3.0]]), np.array([[2.0, -0.8], [-0.8, 5.0]]))
CENTRES = (np.array([30.3, 28.7]), np.array([12.6, 40.2]))


@pytest.mark.parametrize("to", TYPES)
def test_heatmap_covariance_recovers_anisotropic_gaussian(to):
    heatmaps = np.stack([_gaussian((64, 56), c, s) for c, s in zip(CENTRES, COVS)])
    peaks = np.stack(CENTRES)
    out = heatmap_covariance(to(heatmaps.astype(np.float32)), to(peaks), radius=14)
    assert type(out) is type(to(heatmaps)) and out.shape == (2, 2, 2)
    np.testing.assert_allclose(np.asarray(out), np.stack(COVS), atol=0.01)
    # logits of the same map, and a map on a constant background (removed by the border ring)
    logits = np.log(np.clip(heatmaps, 1e-7, None)) - np.log1p(-np.clip(heatmaps, None, 1 - 1e-7))
    np.testing.assert_allclose(np.asarray(heatmap_covariance(to(logits), to(peaks), 14, logits=True)), COVS, atol=0.01)
    np.testing.assert_allclose(np.asarray(heatmap_covariance(to(heatmaps + 0.2), to(peaks), 14)), COVS, atol=0.05)
    # no background removal: the constant inflates the moments
    assert np.asarray(heatmap_covariance(to(heatmaps + 0.2), to(peaks), 14, background=False))[0, 0, 0] > 10


def test_heatmap_covariance_edge_cases():
    empty = np.zeros((1, 20, 20))
    assert np.isnan(heatmap_covariance(empty, np.array([[10.0, 10.0]]))).all()
    with pytest.raises(ValueError, match=r"peaks must have shape \(1, 2\)"):
        heatmap_covariance(empty, np.zeros((2, 2)))
    # a peak at the border: pixels outside the map weigh nothing, the variance across the border shrinks
    edge = _gaussian((20, 20), (0.0, 10.0), np.eye(2) * 4)[None]
    out = heatmap_covariance(edge, np.array([[0.0, 10.0]]), radius=8)
    assert out[0, 1, 1] == pytest.approx(4.0, abs=0.05) and out[0, 0, 0] < 4.0


@pytest.mark.parametrize("to", TYPES)
def test_covariance_to_source(to):
    cov = to(np.array([[[4.0, 1.0], [1.0, 2.0]]]))
    matrix = np.array([[2.0, 0.0, 5.0], [0.0, 3.0, -1.0], [0.0, 0.0, 1.0]])
    out = covariance_to_source(cov, matrix, spacing=(0.1, 0.2))
    expected = np.array([[16.0, 6.0], [6.0, 18.0]]) * np.outer([0.1, 0.2], [0.1, 0.2])
    assert type(out) is type(cov)
    np.testing.assert_allclose(np.asarray(out)[0], expected)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(np.asarray(covariance_to_source(cov, rot))[0], [[2.0, -1.0], [-1.0, 4.0]])
    np.testing.assert_allclose(np.asarray(covariance_sigma(cov)), [math.sqrt(3.0)])


def test_calibration_recovers_known_scales(tmp_path):
    rng = np.random.default_rng(0)
    n, k = 4000, 3
    scales = np.array([0.5, 1.0, 2.5])
    a = rng.normal(size=(n, k, 2, 2))
    cov = a @ np.swapaxes(a, -1, -2) + 0.2 * np.eye(2)  # a different predicted covariance per error
    chol = np.linalg.cholesky(cov * (scales**2)[None, :, None, None])
    errors = (chol @ rng.normal(size=(n, k, 2, 1)))[..., 0]
    errors[0, 1] = np.nan  # ignored
    mle = UncertaintyCalibration.fit(errors, cov)
    np.testing.assert_allclose(mle.scales, scales, rtol=0.05)
    quantile = UncertaintyCalibration.fit(errors, cov, method="quantile", coverage=0.95)
    np.testing.assert_allclose(quantile.scales, scales, rtol=0.05)
    assert ellipse_coverage(errors, cov) < 0.9  # uncalibrated: the errors of landmark 2 are 2.5x too big
    assert ellipse_coverage(errors, quantile(cov)) == pytest.approx(0.95, abs=0.005)
    np.testing.assert_allclose(quantile(torch.as_tensor(cov)).numpy(), cov * (quantile.scales**2)[:, None, None])
    loaded = UncertaintyCalibration.load(mle.save(tmp_path / "models" / "uncertainty_calibration.json"))
    np.testing.assert_array_equal(loaded.scales, mle.scales)
    assert (loaded.method, loaded.coverage) == ("mle", 0.95)
    with pytest.raises(ValueError, match=r"landmark\(s\) \[1\] have fewer than 2 validation errors"):
        UncertaintyCalibration.fit(errors[:2], cov[:2])  # errors[0, 1] is NaN: one value left for landmark 1
    (tmp_path / "bad.json").write_text('{"format": "x"}')
    with pytest.raises(ValueError, match="bad.json: not an uncertainty calibration file"):
        UncertaintyCalibration.load(tmp_path / "bad.json")
    assert chi2_2_quantile(0.95) == pytest.approx(5.991, abs=1e-3)


def _model_image(affine_scale=(2.0, 4.0), size=(40, 30)):
    """A MetaTensor model-grid image whose pixels are (2, 4) source pixels: model -> source = diag(2, 4)."""
    image = MetaTensor(torch.zeros(1, *size), affine=torch.diag(torch.tensor([*affine_scale, 1.0, 1.0])))
    image.meta[MetaKeys.ORIGINAL_AFFINE] = torch.eye(4, dtype=torch.float64)
    return image


@pytest.mark.parametrize("stride", [1, 2])
def test_landmark_uncertaintyd_maps_to_source_mm(stride):
    codec = GaussianHeatmapCodec(sigma=2.0, stride=stride)
    points = torch.tensor([[10.3, 12.6], [25.0, 8.2]])
    heatmap = codec.encode(points, spatial_size=(40, 30))
    logits = torch.logit(heatmap.clamp(1e-7, 1 - 1e-7))
    item = {"pred": logits, "image": _model_image(), "spacing": torch.tensor([0.2, 0.4])}
    out = LandmarkUncertaintyd(codec=codec)(item)
    # the codec's sigma of 2 model pixels is 4 and 8 source pixels, at 0.1 mm: SD 0.4 and 0.8 mm
    expected = np.diag([0.4**2, 0.8**2])
    np.testing.assert_allclose(out["cov_mm"].numpy(), np.stack([expected] * 2), atol=0.02 * stride)
    np.testing.assert_allclose(out["sigma_mm"].numpy(), [math.sqrt((0.16 + 0.64) / 2)] * 2, atol=0.02 * stride)
    assert out["cov_mm"].dtype == torch.float32 and out["pred"] is logits
    calibration = UncertaintyCalibration([2.0, 0.5])
    calibrated = LandmarkUncertaintyd(codec=codec, calibration=calibration)(item)
    np.testing.assert_allclose(calibrated["sigma_mm"].numpy(), out["sigma_mm"].numpy() * [2.0, 0.5], rtol=1e-5)
    # after LandmarksToSourced the spacing is the source one already
    source = LandmarkUncertaintyd(codec=codec, source_spacing=True)({**item, "spacing": torch.tensor([0.1, 0.1])})
    np.testing.assert_allclose(source["cov_mm"].numpy(), out["cov_mm"].numpy(), rtol=1e-5)
    with pytest.raises(KeyError, match="'spacing' is not in the data"):
        LandmarkUncertaintyd(codec=codec)({"pred": logits, "image": item["image"]})


def test_landmark_uncertainty_numpy_in_numpy_out():
    codec = GaussianHeatmapCodec(sigma=2.0, normalize=True)
    heatmap = codec.encode(torch.tensor([[10.0, 12.0]]), spatial_size=(30, 30)).numpy()
    sigma, cov = LandmarkUncertainty(codec, logits=False)(heatmap, np.eye(3), (0.1, 0.1))
    assert isinstance(sigma, np.ndarray) and isinstance(cov, np.ndarray)
    np.testing.assert_allclose(cov[0], np.eye(2) * 0.04, atol=1e-3)


def test_landmark_uncertaintyd_in_the_bundle_postprocessing():
    """Source image 400 x 300 px at 0.1 mm, resized to the model's 100 x 60 with the bundle's transforms: the
    codec's isotropic sigma of 2 model pixels is 8 x 10 source pixels, i.e. SD 0.8 and 1.0 mm."""
    from monai.transforms import Compose

    from monai_ceph.transforms import HeatmapToLandmarksd, LandmarksToSourced, ResizeWithLandmarksd

    codec = GaussianHeatmapCodec(sigma=2.0)
    item = {"image": MetaTensor(torch.zeros(1, 400, 300)), "landmarks": torch.tensor([[120.0, 90.0], [300.0, 200.0]]),
            "spacing": torch.tensor([0.1, 0.1])}
    item["image"].meta[MetaKeys.ORIGINAL_AFFINE] = item["image"].affine.clone()
    item = ResizeWithLandmarksd(keys="image", spatial_size=(100, 60), mask_keys=None)(item)
    np.testing.assert_allclose(item["spacing"].numpy(), [0.4, 0.5], rtol=1e-5)
    item["pred"] = torch.logit(codec.encode(item["landmarks"], (100, 60)).clamp(1e-7, 1 - 1e-7))
    post = Compose([
        HeatmapToLandmarksd(keys="pred", codec=codec, logits=True),
        LandmarkUncertaintyd(keys="pred", codec=codec),
        LandmarksToSourced(keys=["pred_landmarks"], ref_key="image", spacing_key="spacing"),
    ])
    out = post(item)
    np.testing.assert_allclose(out["spacing"].numpy(), [0.1, 0.1], rtol=1e-5)
    np.testing.assert_allclose(out["pred_landmarks"].numpy(), [[120.0, 90.0], [300.0, 200.0]], atol=0.05)
    np.testing.assert_allclose(out["cov_mm"].numpy(), np.stack([np.diag([0.64, 1.0])] * 2), rtol=0.02, atol=1e-3)
