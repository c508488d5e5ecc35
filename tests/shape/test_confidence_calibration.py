"""The confidence term and the shrinkage of :class:`UncertaintyCalibration`, and where the bundle feeds them."""

import math

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.utils import MetaKeys

from monai_ceph.handlers import UncertaintyCalibrationSaver
from monai_ceph.handlers.uncertainty import UncertaintyRecords
from monai_ceph.shape import (
    CovarianceToSourced,
    LandmarkUncertaintyd,
    UncertaintyCalibration,
    confidence_factor,
    covariance_sigma,
    ellipse_coverage,
    spearman_rho,
)
from monai_ceph.transforms import GaussianHeatmapCodec


def _errors(rng, n, scales, power):
    """Errors whose SD is ``scale_k * (1 - confidence)^power`` times that of a random predicted covariance."""
    k = len(scales)
    a = rng.normal(size=(n, k, 2, 2))
    cov = a @ np.swapaxes(a, -1, -2) + 0.2 * np.eye(2)
    confidence = rng.uniform(0.3, 0.999, size=(n, k))
    true = cov * ((np.asarray(scales) ** 2)[None, :] * confidence_factor(confidence, 2 * power))[..., None, None]
    errors = (np.linalg.cholesky(true) @ rng.normal(size=(n, k, 2, 1)))[..., 0]
    return errors, cov, confidence


def test_confidence_factor():
    floor = math.sqrt(1e-3)
    np.testing.assert_allclose(confidence_factor([0.0, 0.75, 1.0, 0.9999], 0.5), [1.0, 0.5, floor, floor])
    assert np.isnan(confidence_factor([np.nan], 1.0)).all()
    np.testing.assert_allclose(confidence_factor(torch.tensor([0.2, 0.6]), 0.0), [1.0, 1.0])


def test_fit_recovers_the_confidence_power_and_scales(tmp_path):
    rng = np.random.default_rng(1)
    scales = np.array([0.5, 1.0, 2.0])
    errors, cov, confidence = _errors(rng, 3000, scales, power=0.6)
    cal = UncertaintyCalibration.fit(errors, cov, "mle", confidence=confidence, shrinkage=0)
    assert cal.confidence_power == pytest.approx(0.6, abs=0.051) and cal.uses_confidence
    np.testing.assert_allclose(cal.scales, scales, rtol=0.06)
    # the calibrated covariances rank the errors and cover them; without the confidence they do neither as well
    radial = np.linalg.norm(errors, axis=-1)
    calibrated = cal(cov, confidence)
    plain = UncertaintyCalibration.fit(errors, cov, "mle", shrinkage=0)
    assert plain.confidence_power == 0 and not plain.uses_confidence
    assert spearman_rho(covariance_sigma(calibrated), radial) > spearman_rho(covariance_sigma(plain(cov)), radial) + 0.1
    assert ellipse_coverage(errors, calibrated) == pytest.approx(0.95, abs=0.01)
    quantile = UncertaintyCalibration.fit(errors, cov, "quantile", confidence=confidence)
    assert ellipse_coverage(errors, quantile(cov, confidence)) == pytest.approx(0.95, abs=0.002)
    # torch in, torch out; the power is saved with the scales
    np.testing.assert_allclose(cal(torch.as_tensor(cov), torch.as_tensor(confidence)).numpy(), calibrated)
    loaded = UncertaintyCalibration.load(cal.save(tmp_path / "cal.json"))
    assert loaded.confidence_power == cal.confidence_power
    np.testing.assert_allclose(loaded(cov, confidence), calibrated)
    with pytest.raises(ValueError, match="scales each covariance by the point's confidence"):
        cal(cov)
    with pytest.raises(ValueError, match=r"confidence must be \(3000, 3\)"):
        cal(cov, confidence[:, :2])
    with pytest.raises(ValueError, match="confidence_power must be finite and >= 0"):
        UncertaintyCalibration([1.0], confidence_power=-1)


def test_an_uninformative_confidence_gets_no_power():
    rng = np.random.default_rng(2)
    errors, cov, _ = _errors(rng, 3000, [1.0, 1.0], power=0.0)
    noise = rng.uniform(0.3, 0.999, size=errors.shape[:2])
    assert UncertaintyCalibration.fit(errors, cov, confidence=noise).confidence_power <= 0.05


def test_shrinkage_pulls_the_scales_together():
    rng = np.random.default_rng(3)
    errors, cov, _ = _errors(rng, 20, [0.5, 2.0], power=0.0)
    alone = UncertaintyCalibration.fit(errors, cov, shrinkage=0).scales
    pooled = UncertaintyCalibration.fit(errors, cov, shrinkage=math.inf).scales
    default = UncertaintyCalibration.fit(errors, cov).scales  # 40 points against each landmark's 20
    assert pooled[0] == pytest.approx(pooled[1])
    assert alone[0] < default[0] < pooled[0] and pooled[1] < default[1] < alone[1]
    m = np.einsum("nki,nkij,nkj->nk", errors, np.linalg.inv(cov), errors).mean(0) / 2
    np.testing.assert_allclose(alone**2, m)
    np.testing.assert_allclose(default**2, (20 * m + 40 * m.mean()) / 60)
    with pytest.raises(ValueError, match="shrinkage must be >= 0"):
        UncertaintyCalibration.fit(errors, cov, shrinkage=-1)


def _model_image():
    image = MetaTensor(torch.zeros(1, 40, 30), affine=torch.diag(torch.tensor([2.0, 4.0, 1.0, 1.0])))
    image.meta[MetaKeys.ORIGINAL_AFFINE] = torch.eye(4, dtype=torch.float64)
    return image


def test_the_transforms_pass_the_confidence_to_the_calibration():
    cal = UncertaintyCalibration([1.0, 1.0], confidence_power=0.5)
    item = {"pred_covariance": torch.eye(2).repeat(2, 1, 1), "pred_confidence": torch.tensor([0.75, 0.99]),
            "image": _model_image(), "spacing": torch.tensor([0.2, 0.4])}
    plain = CovarianceToSourced()(item)
    out = CovarianceToSourced(calibration=cal)(item)
    np.testing.assert_allclose(out["sigma_mm"].numpy(), plain["sigma_mm"].numpy() * [0.5, 0.1], rtol=1e-5)
    with pytest.raises(KeyError, match="'pred_confidence' is not in the data"):
        CovarianceToSourced(calibration=cal)({k: v for k, v in item.items() if k != "pred_confidence"})
    # from heatmaps: the decoded peak's confidence; a weaker peak of the same shape gets a larger sigma
    codec = GaussianHeatmapCodec(sigma=2.0)
    heatmap = codec.encode(torch.tensor([[10.0, 12.0], [25.0, 8.0]]), spatial_size=(40, 30))
    heatmap = heatmap / heatmap.amax((-2, -1), keepdim=True) * torch.tensor([0.99, 0.75])[:, None, None]
    logits = torch.logit(heatmap.clamp(1e-7, 1 - 1e-7))
    base = {"pred": logits, "image": _model_image(), "spacing": torch.tensor([0.2, 0.4])}
    a = LandmarkUncertaintyd(codec=codec, background=False)(base)["sigma_mm"]
    b = LandmarkUncertaintyd(codec=codec, calibration=cal, background=False)(base)["sigma_mm"]
    np.testing.assert_allclose((b / a).numpy(), [0.1, 0.5], rtol=0.02)


def test_the_saver_fits_the_confidence_power(tmp_path):
    rng = np.random.default_rng(4)
    errors, cov, confidence = _errors(rng, 400, np.ones(19), power=0.8)
    records = UncertaintyRecords()
    for e, c, f in zip(errors, cov, confidence):
        truth = rng.uniform(100, 200, size=(19, 2))
        assert records.add({"pred_landmarks": truth + e / 0.1, "landmarks": truth, "spacing": [0.1, 0.1], "cov_mm": c,
                            "pred_confidence": f})
    got_errors, got_cov, got_confidence = records.gathered()
    np.testing.assert_allclose(got_errors, errors, atol=1e-9)
    np.testing.assert_allclose(got_confidence, confidence)
    saver = UncertaintyCalibrationSaver(tmp_path / "cal.json")
    saver.records = records
    saver.logger = __import__("logging").getLogger("test")
    saver.completed(None)
    loaded = UncertaintyCalibration.load(tmp_path / "cal.json")
    assert loaded.confidence_power == pytest.approx(0.8, abs=0.15)
    # items without a confidence: NaN recorded, and the calibration has no confidence term
    plain = UncertaintyRecords()
    plain.add({"pred_landmarks": np.zeros((19, 2)), "landmarks": np.ones((19, 2)), "spacing": [0.1, 0.1],
               "cov_mm": cov[0]})
    assert np.isnan(plain.gathered()[2]).all()
