"""Uncertainty and shape outputs in the handlers: LandmarkWriter columns, OverlaySaver ellipses and legend,
EvaluationReport's Spearman rho and ellipse coverage, UncertaintyCalibrationSaver."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from monai_ceph.handlers import (
    EvaluationReport,
    LandmarkWriter,
    OverlaySaver,
    RadialError,
    UncertaintyCalibrationSaver,
    uncertainty_summary,
)
from monai_ceph.handlers.overlay_saver import ELLIPSE_COLOR, ellipse_outline
from monai_ceph.shape import UncertaintyCalibration, chi2_2_quantile

SPACING = [0.1, 0.2]  # mm/px (x, y)


def covariances(sd_x, sd_y, rho=0.0):
    """(N, 2, 2) covariances in mm^2 from per-point SDs and a correlation."""
    sd_x, sd_y = np.asarray(sd_x, float), np.asarray(sd_y, float)
    c = np.zeros((len(sd_x), 2, 2))
    c[:, 0, 0], c[:, 1, 1] = sd_x**2, sd_y**2
    c[:, 0, 1] = c[:, 1, 0] = rho * sd_x * sd_y
    return c


@pytest.mark.parametrize("as_tensor", [False, True])
def test_writer_sigma_and_covariance_in_mm_and_pixels(tmp_path, as_tensor):
    cov = covariances([0.2, 0.4], [0.6, 0.2], rho=0.5)
    wrap = torch.as_tensor if as_tensor else np.asarray
    item = {"id": "a", "pred_landmarks": wrap([[10.0, 20.0], [30.0, 40.0]]), "spacing": wrap(SPACING),
            "cov_mm": wrap(cov), "uncertainty_calibrated": False}
    LandmarkWriter(tmp_path, landmark_set=None).write(item)
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["uncertainty"]["calibrated"] is False
    first = record["landmarks"][0]
    assert first["sigma_mm"] == pytest.approx(math.sqrt((0.04 + 0.36) / 2))
    assert (first["cov_xx_mm"], first["cov_xy_mm"], first["cov_yy_mm"]) == pytest.approx((0.04, 0.06, 0.36))
    # pixels: divide by spacing_i * spacing_j: 0.04 / 0.01, 0.06 / 0.02, 0.36 / 0.04
    assert (first["cov_xx_px"], first["cov_xy_px"], first["cov_yy_px"]) == pytest.approx((4.0, 3.0, 9.0))
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[1]["sigma_mm"]) == pytest.approx(math.sqrt((0.16 + 0.04) / 2))
    assert float(rows[1]["cov_yy_px"]) == pytest.approx(1.0) and "flagged" not in rows[1]


def test_writer_shape_refinement_columns(tmp_path):
    item = {"id": "b", "pred_landmarks": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "spacing": np.array(SPACING),
            "shape_flagged": np.array([False, True, False]), "shape_distance": np.array([0.5, 7.0, np.nan]),
            "shape_plausibility": 4.5, "unrefined_pred_landmarks": np.array([[1.0, 2.0], [13.0, 4.0], [5.0, 6.0]])}
    LandmarkWriter(tmp_path, landmark_set=None).write(item)
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["shape"] == {"plausibility": 4.5, "flagged": ["L2"]} and "uncertainty" not in record
    assert [r["flagged"] for r in record["landmarks"]] == [False, True, False]
    assert record["landmarks"][1]["unrefined_x"] == 13.0 and record["landmarks"][2]["shape_distance"] is None
    with open(tmp_path / "b.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["flagged"] for r in rows] == ["False", "True", "False"] and rows[2]["shape_distance"] == ""


def test_ellipse_outline_is_the_chi2_contour():
    cov = np.array([[4.0, 1.0], [1.0, 2.0]])
    outline = ellipse_outline(np.array([10.0, 5.0]), cov, 0.95)
    d = outline - [10.0, 5.0]
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d), chi2_2_quantile(0.95), rtol=1e-9)
    assert ellipse_outline(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]])) is None  # not positive definite
    assert ellipse_outline(np.zeros(2), np.full((2, 2), np.nan)) is None


def is_cyan(rgb):
    return (np.abs(rgb - np.array(ELLIPSE_COLOR)) < 40).all(-1)


def test_overlay_draws_the_95_ellipse_and_a_legend(tmp_path):
    image = np.full((1, 200, 120), 0.5, dtype=np.float32)  # (C, x, y): 200 wide, 120 high, flat grey
    # SD 3 px along x, 1 px along y at spacing (0.1, 0.2) mm: cov in mm^2 = diag(0.09, 0.04)
    item = {"id": "c", "pred_landmarks": np.array([[100.0, 80.0]]), "spacing": np.array(SPACING),
            "cov_mm": covariances([0.3], [0.2]), "uncertainty_calibrated": True, "source": image}
    path = OverlaySaver(tmp_path, landmark_set=None, show_names=True, legend=True, source_image_key="source").save(item)
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)  # rows = y
    half_x, half_y = 3 * math.sqrt(chi2_2_quantile(0.95)), math.sqrt(chi2_2_quantile(0.95))  # 7.34, 2.45 px
    cyan = np.argwhere(is_cyan(rgb))
    assert len(cyan)
    ys, xs = cyan[:, 0], cyan[:, 1]
    near = (np.abs(ys - 80) < 10) & (np.abs(xs - 100) < 20)  # the ellipse, not the legend's cyan swatch
    assert xs[near].max() - xs[near].min() == pytest.approx(2 * half_x, abs=2.5)
    assert ys[near].max() - ys[near].min() == pytest.approx(2 * half_y, abs=2.5)
    assert is_cyan(rgb[:30, :120]).any()  # the legend's ellipse entry, top left


def record_engine(items, handlers):
    engine = Engine(lambda e, batch: [items[i] for i in batch])
    for h in handlers:
        h.attach(engine) if not isinstance(h, RadialError) else h.attach(engine, "mre")
    engine.run([[i] for i in range(len(items))])
    return engine


def uncertain_items(n=6):
    """Image i: one landmark 0.1 * (i + 1) mm off in x, predicted SD 0.1 * (i + 1) (rank-perfect), and one
    landmark 1 mm off with SD 0.1 (far outside its ellipse)."""
    items = []
    for i in range(n):
        sd = 0.1 * (i + 1)
        items.append({
            "pred_landmarks": torch.tensor([[sd / 0.1, 0.0], [10.0, 0.0]], dtype=torch.float64),
            "landmarks": torch.zeros(2, 2, dtype=torch.float64),
            "spacing": torch.tensor([0.1, 0.1], dtype=torch.float64),
            "cov_mm": torch.as_tensor(covariances([sd, 0.1], [sd, 0.1])),
            "uncertainty_calibrated": False,
        })
    return items


def test_uncertainty_summary_values():
    errors = np.array([[[0.1 * (i + 1), 0.0], [1.0, 0.0]] for i in range(6)])
    cov = np.stack([covariances([0.1 * (i + 1), 0.1], [0.1 * (i + 1), 0.1]) for i in range(6)])
    s = uncertainty_summary(errors, cov, landmark_set=None)
    assert s["n_points"] == 12
    # landmark 1: every e^T S^-1 e = 1 <= 5.99 (inside); landmark 2: 100 > 5.99 (outside) -> 50 %
    assert s["ellipse_coverage_percent"] == pytest.approx(50.0)
    assert s["per_landmark"][0]["spearman_rho"] == pytest.approx(1.0)
    assert s["per_landmark"][0]["ellipse_coverage_percent"] == 100.0
    assert s["per_landmark"][1]["spearman_rho"] is None  # constant sigma: undefined, not 0
    assert s["per_landmark"][0]["sigma_mm"] == pytest.approx(0.35)
    # pooled: sigmas 0.1..0.6 with errors 0.1..0.6, and sigma 0.1 with error 1.0 six times
    sigma = np.r_[0.1 * np.arange(1, 7), np.full(6, 0.1)]
    error = np.r_[0.1 * np.arange(1, 7), np.full(6, 1.0)]
    stats = pytest.importorskip("scipy.stats", reason="scipy gives the reference value (not a package dependency)")
    assert s["spearman_rho"] == pytest.approx(stats.spearmanr(sigma, error)[0])


def test_evaluation_report_adds_the_uncertainty_block(tmp_path):
    report = EvaluationReport(tmp_path, landmark_set=None, metric_name="mre", plot=False)
    record_engine(uncertain_items(), [RadialError(landmark_set=None), report])
    block = report.summary["uncertainty"]
    assert block["calibrated"] is False and block["n_points"] == 12
    assert block["ellipse_coverage_percent"] == pytest.approx(50.0)
    assert block["per_landmark"][0]["spearman_rho"] == pytest.approx(1.0)
    written = json.loads((tmp_path / "radial_error_summary.json").read_text())
    assert written["uncertainty"] == block
    with open(tmp_path / "radial_error_per_landmark.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["spearman_rho"]) == pytest.approx(1.0) and float(rows[1]["ellipse_coverage_percent"]) == 0.0


def test_evaluation_report_without_covariances_has_no_block(tmp_path):
    items = [{k: v for k, v in item.items() if k != "cov_mm"} for item in uncertain_items(3)]
    report = EvaluationReport(tmp_path, landmark_set=None, metric_name="mre", plot=False)
    record_engine(items, [RadialError(landmark_set=None), report])
    assert "uncertainty" not in report.summary


def test_calibration_saver_fits_and_saves(tmp_path):
    # errors (0.1 (i + 1), 0) with a predicted covariance of 0.01 I: Mahalanobis m_i = (i + 1)^2
    items = []
    for i in range(10):
        items.append({
            "pred_landmarks": torch.tensor([[float(i + 1), 0.0], [0.0, 2.0]], dtype=torch.float64),
            "landmarks": torch.zeros(2, 2, dtype=torch.float64),
            "spacing": torch.tensor([0.1, 0.1], dtype=torch.float64),
            "cov_mm": torch.as_tensor(covariances([0.1, 0.1], [0.1, 0.1])),
            "uncertainty_calibrated": False,
        })
    saver = UncertaintyCalibrationSaver(tmp_path / "models" / "calibration.json", landmark_set=None, method="mle",
                                        shrinkage=0)
    record_engine(items, [saver])
    m = np.array([(i + 1) ** 2 for i in range(10)], float)
    own = np.array([m.mean() / 2, 4.0 / 2])  # landmark 2: 0.2 mm off in y each time -> m = 4
    loaded = UncertaintyCalibration.load(tmp_path / "models" / "calibration.json")
    np.testing.assert_allclose(loaded.scales, np.sqrt(own), rtol=1e-9)
    np.testing.assert_allclose(saver.calibration.scales, np.sqrt(own), rtol=1e-9)
    assert loaded.confidence_power == 0  # the items carry no confidence
    # the default: each landmark's 10 errors shrunk towards the pooled scale with the weight of 40
    shrunk = UncertaintyCalibrationSaver(tmp_path / "shrunk.json", landmark_set=None, method="mle")
    record_engine(items, [shrunk])
    pooled = (m.sum() + 40.0) / 20 / 2
    np.testing.assert_allclose(shrunk.calibration.scales, np.sqrt((10 * own + 40 * pooled) / 50), rtol=1e-9)


def test_calibration_saver_refuses_calibrated_or_missing_covariances(tmp_path):
    items = uncertain_items(3)
    items[1]["uncertainty_calibrated"] = True
    with pytest.raises(ValueError, match="calibrated already"):
        record_engine(items, [UncertaintyCalibrationSaver(tmp_path / "c.json", landmark_set=None)])
    items = [{k: v for k, v in item.items() if k != "cov_mm"} for item in uncertain_items(3)]
    with pytest.raises(KeyError, match="lacks 'cov_mm'"):
        record_engine(items, [UncertaintyCalibrationSaver(tmp_path / "c.json", landmark_set=None)])
    assert not (tmp_path / "c.json").exists()
