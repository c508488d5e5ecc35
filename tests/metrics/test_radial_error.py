import math

import numpy as np
import pytest
import torch

from monai_ceph.metrics import RadialErrorMetric, compute_radial_error, summarize_radial_errors

NAN = float("nan")

# Two images, four landmarks, different anisotropic spacings (mm/px, (x, y) order).
# Image A, spacing (0.1, 0.2): offsets (30, 20) -> (3, 4) mm -> 5; (0, 0) -> 0; (10, 0) -> 1; ground truth missing.
# Image B, spacing (0.5, 0.25): offsets (4, 0) -> 2.0; (0, 10) -> 2.5; (6, 0) -> 3.0; prediction missing -> inf.
GT = [
    [[100.0, 200.0], [50.0, 60.0], [10.0, 10.0], [NAN, NAN]],
    [[300.0, 400.0], [20.0, 20.0], [0.0, 0.0], [7.0, 8.0]],
]
PRED = [
    [[130.0, 220.0], [50.0, 60.0], [20.0, 10.0], [5.0, 5.0]],
    [[304.0, 400.0], [20.0, 30.0], [6.0, 0.0], [NAN, NAN]],
]
SPACING = [[0.1, 0.2], [0.5, 0.25]]
EXPECTED_ERRORS = [[5.0, 0.0, 1.0, NAN], [2.0, 2.5, 3.0, math.inf]]

FINITE = [5.0, 0.0, 1.0, 2.0, 2.5, 3.0]  # the errors MRE and SD are computed over
EXPECTED_MRE = 13.5 / 6
EXPECTED_SD = math.sqrt(sum((e - EXPECTED_MRE) ** 2 for e in FINITE) / 6)  # population SD = 1.5745...
# SDR over the 7 annotated points (the missed prediction is a failure): <=2: {0,1,2}; <=2.5: +2.5; <=3, <=4: +3
EXPECTED_SDR = [300 / 7, 400 / 7, 500 / 7, 500 / 7]

TYPES = [np.asarray, torch.as_tensor]


@pytest.mark.parametrize("as_type", TYPES)
def test_compute_radial_error_hand_values(as_type):
    err = compute_radial_error(as_type(PRED), as_type(GT), as_type(SPACING))
    assert type(err) is type(as_type(PRED))
    np.testing.assert_allclose(np.asarray(err), EXPECTED_ERRORS, rtol=1e-6)


@pytest.mark.parametrize("spacing", [0.1, [0.1, 0.1], [[0.1, 0.1], [0.1, 0.1]]])
def test_compute_radial_error_spacing_forms(spacing):
    pred = torch.tensor([[[3.0, 4.0]], [[6.0, 8.0]]])
    gt = torch.zeros_like(pred)
    np.testing.assert_allclose(compute_radial_error(pred, gt, spacing).numpy(), [[0.5], [1.0]], rtol=1e-6)


def test_compute_radial_error_spacing_is_per_axis():
    # the x offset is scaled by spacing[0], the y offset by spacing[1]
    err = compute_radial_error(torch.tensor([[[10.0, 0.0], [0.0, 10.0]]]), torch.zeros(1, 2, 2), [0.1, 0.3])
    np.testing.assert_allclose(err.numpy(), [[1.0, 3.0]], rtol=1e-6)


@pytest.mark.parametrize(
    "pred, gt, spacing, match",
    [
        (np.zeros((1, 3, 2)), np.zeros((1, 4, 2)), 0.1, "same shape"),
        (np.zeros((3, 2)), np.zeros((3, 2)), 0.1, r"\(B, N, D\)"),
        (np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((3, 2)), "spacing must be"),
        (np.zeros((1, 3, 2)), np.zeros((1, 3, 2)), [0.1, 0.0], "finite and positive"),
        (np.zeros((1, 3, 2)), np.zeros((1, 3, 2)), [0.1, NAN], "finite and positive"),
    ],
)
def test_compute_radial_error_bad_input(pred, gt, spacing, match):
    with pytest.raises(ValueError, match=match):
        compute_radial_error(pred, gt, spacing)


@pytest.mark.parametrize("as_type", TYPES)
def test_metric_pooled_summary(as_type):
    metric = RadialErrorMetric()
    metric(as_type(PRED), as_type(GT), spacing=as_type(SPACING))
    out = metric.aggregate()
    assert out["mre"].item() == pytest.approx(EXPECTED_MRE, rel=1e-6)
    assert out["sd"].item() == pytest.approx(EXPECTED_SD, rel=1e-6)
    np.testing.assert_allclose(out["sdr"].numpy(), EXPECTED_SDR, rtol=1e-6)
    np.testing.assert_allclose(out["thresholds"].numpy(), [2.0, 2.5, 3.0, 4.0])
    assert out["n_valid"].item() == 7  # the NaN ground truth is not counted
    assert out["n_missed"].item() == 1
    # the buffer holds the per-point errors, NaN for not annotated and inf for missed
    np.testing.assert_allclose(metric.get_buffer().numpy(), EXPECTED_ERRORS, rtol=1e-6)


def test_metric_per_landmark_and_per_image():
    metric = RadialErrorMetric(reduction="mean_batch")
    metric(torch.tensor(PRED), torch.tensor(GT), spacing=torch.tensor(SPACING))
    lm = metric.aggregate()
    np.testing.assert_allclose(lm["mre"].numpy(), [3.5, 1.25, 2.0, NAN], rtol=1e-6)
    np.testing.assert_allclose(lm["sd"].numpy(), [1.5, 1.25, 1.0, NAN], rtol=1e-6)
    np.testing.assert_allclose(lm["sdr"][0].numpy(), [50.0, 50.0, 50.0, 0.0])  # @2.0 mm
    np.testing.assert_allclose(lm["sdr"][1].numpy(), [50.0, 100.0, 50.0, 0.0])  # @2.5 mm
    np.testing.assert_array_equal(lm["n_valid"].numpy(), [2, 2, 2, 1])
    np.testing.assert_array_equal(lm["n_missed"].numpy(), [0, 0, 0, 1])

    img = metric.aggregate("mean_channel")
    np.testing.assert_allclose(img["mre"].numpy(), [2.0, 2.5], rtol=1e-6)
    np.testing.assert_allclose(img["sdr"][0].numpy(), [200 / 3, 25.0], rtol=1e-6)
    np.testing.assert_array_equal(img["n_valid"].numpy(), [3, 4])


@pytest.mark.parametrize("threshold, offset, expected", [(2.0, 2.0, 100.0), (2.0, 2.001, 0.0), (2.5, 2.5, 100.0)])
def test_sdr_counts_error_equal_to_threshold(threshold, offset, expected):
    metric = RadialErrorMetric(thresholds=[threshold])
    metric(torch.tensor([[[offset, 0.0]]], dtype=torch.float64), torch.zeros(1, 1, 2, dtype=torch.float64), spacing=1.0)
    assert metric.aggregate()["sdr"].tolist() == [expected]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spacing", [0.1, [0.1, 0.1], torch.tensor([0.1, 0.1], dtype=torch.float32)])
def test_sdr_boundary_survives_rounding(dtype, spacing):
    """Offsets of 20 px and (12, 16) px at 0.1 mm/px are 2.0 mm exactly: successes at 2 mm in any precision."""
    pred = torch.tensor([[[20.0, 0.0], [12.0, 16.0], [20.0, 1.0]]], dtype=dtype)
    metric = RadialErrorMetric(thresholds=[2.0])
    metric(pred, torch.zeros_like(pred), spacing=spacing)
    assert metric.aggregate()["sdr"].item() == pytest.approx(200 / 3)  # (20, 1) px = 2.0025 mm is a failure


def test_metric_decollated_lists_match_batch_and_accumulate():
    by_list = RadialErrorMetric()
    # decollated items as a SupervisedEvaluator produces them; one call per image
    for p, g, s in zip(PRED, GT, SPACING):
        by_list([torch.tensor(p)], [torch.tensor(g)], spacing=[torch.tensor(s)])
    by_batch = RadialErrorMetric()
    by_batch([torch.tensor(p) for p in PRED], [torch.tensor(g) for g in GT], spacing=[torch.tensor(s) for s in SPACING])
    for out in (by_list.aggregate(), by_batch.aggregate()):
        assert out["mre"].item() == pytest.approx(EXPECTED_MRE, rel=1e-6)
        np.testing.assert_allclose(out["sdr"].numpy(), EXPECTED_SDR, rtol=1e-6)
    by_list.reset()
    with pytest.raises(ValueError, match="no buffered errors"):
        by_list.aggregate()


def test_metric_matches_numpy_reference():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 2000, (5, 19, 2))
    pred = gt + rng.normal(0, 20, gt.shape)
    spacing = rng.uniform(0.08, 0.12, (5, 2))
    metric = RadialErrorMetric(thresholds=(2.0, 4.0))
    metric(pred, gt, spacing=spacing)
    out = metric.aggregate()
    ref = np.sqrt((((pred - gt) * spacing[:, None]) ** 2).sum(-1))
    assert out["mre"].item() == pytest.approx(ref.mean(), rel=1e-9)
    assert out["sd"].item() == pytest.approx(ref.std(), rel=1e-9)
    np.testing.assert_allclose(out["sdr"].numpy(), [100 * (ref <= 2).mean(), 100 * (ref <= 4).mean()])


def test_all_missing_gives_nan_not_zero():
    out = summarize_radial_errors(torch.full((2, 3), NAN))
    assert math.isnan(out["mre"].item()) and math.isnan(out["sdr"][0].item())
    assert out["n_valid"].item() == 0


@pytest.mark.parametrize(
    "kwargs, call_kwargs, match",
    [
        ({}, {"y": None, "spacing": 0.1}, "ground-truth"),
        ({}, {"y": np.zeros((1, 2, 2)), "spacing": None}, "spacing"),
        ({"reduction": "sum"}, None, "unsupported reduction"),
        ({"thresholds": (2.0, -1.0)}, None, "thresholds"),
    ],
)
def test_metric_bad_arguments(kwargs, call_kwargs, match):
    with pytest.raises(ValueError, match=match):
        metric = RadialErrorMetric(**kwargs)
        metric(np.zeros((1, 2, 2)), **call_kwargs)


def _read_isbi_csv(path):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    points = {r["image_path"]: [[float(r[f"{i}_x"]), float(r[f"{i}_y"])] for i in range(1, 20)] for r in rows}
    return [points[k] for k in sorted(points)], sorted(points)


@pytest.mark.isbi
def test_isbi_inter_observer_errors_match_the_dataset_readme(isbi_dir):
    """Senior vs average and vs reconstructed junior annotations on test1 (150 images, 0.1 mm/px): the README
    of the data gives MRE 1.18 mm and 2.36 mm."""
    senior, ids = _read_isbi_csv(isbi_dir / "test1_senior.csv")
    average_all, all_ids = _read_isbi_csv(isbi_dir / "average_senior_junior.csv")
    average = np.asarray([average_all[all_ids.index(i)] for i in ids])
    senior = np.asarray(senior)
    junior = 2 * average - senior
    for other, expected in ((average, 1.18), (junior, 2.36)):
        metric = RadialErrorMetric()
        metric(senior, other, spacing=[0.1, 0.1])
        out = metric.aggregate()
        assert out["n_valid"].item() == 150 * 19
        assert out["mre"].item() == pytest.approx(expected, abs=0.005)
    # many integer pixel offsets give exactly 2.0, 2.5, 3.0 or 4.0 mm: those are successes (error <= t)
    ref = np.round(np.linalg.norm((senior - junior) * 0.1, axis=-1), 9)
    np.testing.assert_allclose(out["sdr"].numpy(), [100 * (ref <= t).mean() for t in (2.0, 2.5, 3.0, 4.0)])


def test_integer_pixel_coordinates_are_computed_in_double():
    err = compute_radial_error(np.array([[[20, 0], [12, 16]]]), np.zeros((1, 2, 2), dtype=int), [0.1, 0.1])
    assert err.dtype == np.float64
    np.testing.assert_allclose(err, [[2.0, 2.0]], rtol=1e-12)
