import json

import numpy as np
import pytest
import torch

from monai_ceph.shape import ShapeModel, Similarity, similarity_fit

TYPES = (np.asarray, torch.as_tensor)


def test_fit_recovers_the_generating_modes(synthetic_shapes, synthetic_model, template):
    model = synthetic_model
    assert model.num_landmarks == 8 and model.num_shapes == 200
    # three modes carry the variance (SD 4, 2.5, 1.5 mm against 0.3 mm noise)
    assert np.sqrt(model.variances[:3]) == pytest.approx([4.0, 2.5, 1.5], rel=0.2)
    assert np.sqrt(model.residual_variance) < 0.5
    # the mean is the template up to a similarity
    pose = similarity_fit(template, model.mean)
    np.testing.assert_allclose(pose(template), model.mean, atol=0.6)


def test_fit_with_missing_points_matches_complete_fit(synthetic_shapes, synthetic_model):
    shapes = synthetic_shapes.copy()
    rng = np.random.default_rng(3)
    shapes[rng.random(shapes.shape[:2]) < 0.1] = np.nan
    model = ShapeModel.fit(shapes, min_residual_sd=0.25)
    pose = similarity_fit(model.mean, synthetic_model.mean)
    np.testing.assert_allclose(pose(model.mean), synthetic_model.mean, atol=0.3)
    assert np.sqrt(model.variances[:3]) == pytest.approx(np.sqrt(synthetic_model.variances[:3]), rel=0.15)


def test_fit_needs_2k_shapes(synthetic_shapes):
    with pytest.raises(ValueError, match=r"at least 2\*K = 16 training shapes .* got 15"):
        ShapeModel.fit(synthetic_shapes[:15])
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        ShapeModel.fit(synthetic_shapes[..., 0])
    shapes = synthetic_shapes.copy()
    shapes[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"landmark\(s\) \[2\] are missing in every training shape"):
        ShapeModel.fit(shapes)


@pytest.mark.parametrize("to", TYPES)
@pytest.mark.parametrize("moved", [0, 4, 7])
def test_moved_point_returns_to_perfect_shape(synthetic_model, perfect, to, moved):
    shape = perfect.copy()
    shape[moved] += [12.0, -9.0]
    others = [i for i in range(8) if i != moved]
    out = synthetic_model.refit(to(shape), others)
    assert type(out) is type(to(shape))
    np.testing.assert_allclose(np.asarray(out), perfect, atol=1e-6)
    # the same with evidence everywhere: the MAP refinement drops the contradicted point, flags it, restores it
    refined, flags = synthetic_model.refine(to(shape), np.full(8, 1.0))
    assert flags.tolist() == [i == moved for i in range(8)]
    np.testing.assert_allclose(np.asarray(refined), perfect, atol=1e-6)


@pytest.mark.parametrize("to", TYPES)
def test_fixed_points_never_move(synthetic_shapes, synthetic_model, to):
    rng = np.random.default_rng(5)
    shape = synthetic_shapes[7] + rng.normal(scale=3.0, size=(8, 2))
    for fixed in ([2], [0, 5], [1, 3, 6]):
        out = np.asarray(synthetic_model.refit(to(shape), fixed, sigma=to(np.full(8, 2.0))))
        np.testing.assert_array_equal(out[fixed], np.asarray(to(shape))[fixed])
        free = [i for i in range(8) if i not in fixed]
        assert np.abs(out[free] - shape[free]).max() > 0.1  # the others did move
    # names work too (the ISBI set is used by the real-data test); a sigma of inf means "from the shape alone"
    alone = synthetic_model.refit(shape, [0, 5], sigma=np.full(8, np.inf))
    np.testing.assert_allclose(alone, synthetic_model.refit(shape, [0, 5]))


def test_conditional_mean_matches_closed_form(template):
    rng = np.random.default_rng(11)
    k = 5
    components = np.linalg.qr(rng.normal(size=(2 * k, 3)))[0].T
    ppca = components.T @ np.diag([9.0, 4.0, 1.0]) @ components + 0.25 * np.eye(2 * k)
    np.testing.assert_allclose(ShapeModel(template[:k], components, [9.0, 4.0, 1.0], 0.25, pose_variance=0).covariance, ppca)
    model = ShapeModel(template[:k], components, [9.0, 4.0, 1.0], 0.25)
    c = model.covariance
    # the pose term adds variance only along the 4 similarity directions at the mean
    centred = (template[:k] - template[:k].mean(0)).reshape(-1)
    np.testing.assert_allclose((c - ppca) @ np.tile([1.0, 0.0], k), 1e4 * np.tile([1.0, 0.0], k), atol=1e-8)
    np.testing.assert_allclose((c - ppca) @ centred, 1e4 * centred, atol=1e-6)
    y = template[:k] + rng.normal(scale=2.0, size=(k, 2))
    fixed = [0, 3]
    o, u = [0, 1, 6, 7], [2, 3, 4, 5, 8, 9]
    mu = template[:k].reshape(-1)
    expected = mu[u] + c[np.ix_(u, o)] @ np.linalg.solve(c[np.ix_(o, o)], y.reshape(-1)[o] - mu[o])
    mean, cov = model.posterior(y, fixed, align=False)
    np.testing.assert_allclose(mean.reshape(-1)[u], expected, atol=1e-9)
    expected_cov = c[np.ix_(u, u)] - c[np.ix_(u, o)] @ np.linalg.solve(c[np.ix_(o, o)], c[np.ix_(o, u)])
    np.testing.assert_allclose(cov[1], expected_cov[:2, :2], atol=1e-9)
    np.testing.assert_array_equal(cov[fixed], 0.0)
    # with noisy evidence (SD 1.5 mm) on point 1: condition on it with C + 2.25 I on its block
    sigma = np.array([np.nan, 1.5, np.nan, np.nan, np.nan])
    o2 = [0, 1, 2, 3, 6, 7]
    noise = np.diag([0.0, 0.0, 2.25, 2.25, 0.0, 0.0])
    expected2 = mu + c[:, o2] @ np.linalg.solve(c[np.ix_(o2, o2)] + noise, y.reshape(-1)[o2] - mu[o2])
    mean2, _ = model.posterior(y, fixed, sigma, align=False)
    np.testing.assert_allclose(mean2.reshape(-1)[[4, 5, 8, 9, 2, 3]], expected2[[4, 5, 8, 9, 2, 3]], atol=1e-9)


def test_refit_is_equivariant_under_similarity(synthetic_shapes, synthetic_model):
    shape = synthetic_shapes[3] + np.random.default_rng(2).normal(scale=2.0, size=(8, 2))
    pose = Similarity(complex(1.7 * np.exp(0.9j)), complex(-30.0, 12.0))
    sigma = np.full(8, 2.0)
    out = synthetic_model.refit(shape, [1, 4], sigma)
    moved = synthetic_model.refit(pose(shape), [1, 4], sigma * 1.7)
    np.testing.assert_allclose(moved, pose(out), atol=1e-6)


def test_mirrored_profile(synthetic_model, perfect):
    mirror = perfect * [-1.0, 1.0]
    score = synthetic_model.plausibility(mirror)
    assert score.mirrored and not synthetic_model.plausibility(perfect).mirrored
    assert score.distance == pytest.approx(synthetic_model.plausibility(perfect).distance, abs=1e-6)
    shape = mirror.copy()
    shape[6] += [8.0, 8.0]
    np.testing.assert_allclose(synthetic_model.refit(shape, [0, 1, 2, 3, 4, 5, 7]), mirror, atol=1e-6)


def test_plausibility_scores_a_moved_point(synthetic_shapes, synthetic_model):
    shape = synthetic_shapes[10]
    clean = synthetic_model.plausibility(shape)
    assert clean.dof == 12 and clean.distance < 6.0 and not clean.outliers().any()
    moved = shape.copy()
    moved[5] += [10.0, 0.0]
    score = synthetic_model.plausibility(moved)
    assert score.distance > 2 * clean.distance
    assert int(np.argmax(score.landmark_distance)) == 5 and score.outliers()[5]
    np.testing.assert_allclose(score.expected[5], shape[5], atol=2.5)  # where the others put it
    missing = moved.copy()
    missing[2] = np.nan
    part = synthetic_model.plausibility(missing)
    assert part.dof == 10 and np.isnan(part.landmark_distance[2]) and part.outliers()[5]


def test_refine_pulls_weak_evidence_and_keeps_strong(synthetic_model, perfect):
    shape = perfect.copy()
    shape[3] += [0.5, 0.0]  # within the model (the conditional SD of point 3 given the others is 0.3 mm)
    weak = np.full(8, 0.5)
    weak[3] = 20.0
    refined, flags = synthetic_model.refine(shape, weak)
    assert not flags.any() and np.linalg.norm(refined[3] - perfect[3]) < 0.1
    strong = np.full(8, 0.5)
    strong[3] = 0.05
    refined, flags = synthetic_model.refine(shape, strong)
    assert not flags.any() and np.linalg.norm(refined[3] - shape[3]) < 0.05
    # missing evidence: the point comes from the shape, full covariances are accepted
    shape[3] = np.nan
    cov = np.tile(np.eye(2) * 0.25, (8, 1, 1))
    refined, flags = synthetic_model.refine(shape, cov)
    np.testing.assert_allclose(refined, perfect, atol=1e-6)


def test_bad_input_names_the_entry(synthetic_model, synthetic_shapes):
    shape = synthetic_shapes[0]
    with pytest.raises(ValueError, match="index 8 is out of range 0..7"):
        synthetic_model.refit(shape, [1, 8])
    with pytest.raises(ValueError, match="'Me': this shape model has no landmark set"):
        synthetic_model.refit(shape, ["Me"])
    nan = shape.copy()
    nan[3] = np.nan
    with pytest.raises(ValueError, match=r"fixed landmark\(s\) 3 have no \(finite\) position"):
        synthetic_model.refit(nan, [1, 3])
    with pytest.raises(ValueError, match=r"landmarks must have shape \(8, 2\)"):
        synthetic_model.refit(shape[:7], [1])
    with pytest.raises(ValueError, match=r"sigma must be SDs of shape \(8,\)"):
        synthetic_model.refit(shape, [1], sigma=np.ones(7))
    with pytest.raises(ValueError, match="not a landmark index or name"):
        synthetic_model.refit(shape, [1.5])
    with pytest.raises(ValueError, match="two or more fixed or evidence landmarks"):
        synthetic_model.refit(shape, [1])
    with pytest.raises(ValueError, match=r"cov_or_sigma: entries 0, 1, 2, 3, 4, 5, 6, 7 are not positive SDs"):
        synthetic_model.refine(shape, -np.ones(8))
    cov = np.tile(np.eye(2), (8, 1, 1))
    cov[4] = [[1.0, 2.0], [2.0, 1.0]]
    with pytest.raises(ValueError, match=r"cov_or_sigma: entries 4 are not positive definite"):
        synthetic_model.refine(shape, cov)


def test_save_load_round_trip(tmp_path, synthetic_model, synthetic_shapes):
    path = synthetic_model.save(tmp_path / "models" / "shape_model.json")
    loaded = ShapeModel.load(path)
    for name in ("mean", "components", "variances", "covariance"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(synthetic_model, name))
    assert loaded.residual_variance == synthetic_model.residual_variance
    assert (loaded.num_shapes, loaded.landmark_set, loaded.num_landmarks) == (200, None, 8)
    shape = synthetic_shapes[1]
    np.testing.assert_array_equal(loaded.refit(shape, [0, 1], np.full(8, 2.0)),
                                  synthetic_model.refit(shape, [0, 1], np.full(8, 2.0)))
    content = json.loads(path.read_text())
    (tmp_path / "bad.json").write_text(json.dumps({**content, "num_landmarks": 7}))
    with pytest.raises(ValueError, match="bad.json: num_landmarks 7 but a mean of 8"):
        ShapeModel.load(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text(json.dumps({**content, "mean": content["mean"][:7]}))
    with pytest.raises(ValueError, match=r"short.json: bad shape model entry: components must have shape \(M, 2K = 14\)"):
        ShapeModel.load(tmp_path / "short.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="other.json: not a shape model file"):
        ShapeModel.load(tmp_path / "other.json")
    with pytest.raises(ValueError, match="has 8 landmarks, the isbi2015 set 19"):
        loaded.check_landmark_set("isbi2015")


@pytest.mark.parametrize("to", TYPES)
def test_robust_refit_down_weights_an_outlier_evidence_point(synthetic_model, perfect, to):
    """Evidence at the perfect shape (SD 1 mm) but one point 15 mm off: the Gaussian fusion spreads the error
    over every point, the Student-t weights (``nu``) discount the outlier and the estimate returns to the shape."""
    evidence = perfect.copy()
    evidence[5] += [12.0, -9.0]
    sigma = np.full(8, 1.0)
    gaussian = np.linalg.norm(np.asarray(synthetic_model.refit(to(evidence), [0, 1], to(sigma), nu=None)) - perfect, axis=1)
    out = synthetic_model.refit(to(evidence), [0, 1], to(sigma))  # default REFIT_NU = 1
    assert type(out) is type(to(evidence))
    robust = np.linalg.norm(np.asarray(out) - perfect, axis=1)
    assert gaussian[5] > 5.0 and gaussian[[2, 3, 4, 6, 7]].min() > 1.0  # the outlier pulls every point off
    assert robust[5] < 0.2 and robust.max() < 0.2  # from 15 mm off
    np.testing.assert_array_equal(robust[[0, 1]], 0.0)
    # a larger nu is closer to the Gaussian
    assert robust[5] < np.linalg.norm(synthetic_model.refit(evidence, [0, 1], sigma, nu=4.0)[5] - perfect[5]) < gaussian[5]


def test_robust_weights_are_a_fixed_point(synthetic_model):
    """The robust posterior is the Gaussian posterior with each evidence covariance divided by its weight
    ``w = (nu + 2) / (nu + d^2)``, ``d`` the evidence's Mahalanobis distance from the result (IRLS at convergence;
    in the model frame, so that no pose is involved)."""
    rng = np.random.default_rng(5)
    y = synthetic_model.mean + rng.normal(scale=0.5, size=(8, 2))
    y[6] += [6.0, 3.0]
    cov = np.tile(np.diag([1.0, 2.25]), (8, 1, 1))
    nu = 1.0
    mean, _ = synthetic_model.posterior(y, None, cov, align=False, nu=nu)
    r = y - mean
    d2 = np.einsum("ki,kij,kj->k", r, np.linalg.inv(cov), r)
    w = (nu + 2) / (nu + d2)
    assert w[6] < 0.2 and np.delete(w, 6).min() > 1.0  # the moved point counts less, the rest more
    gaussian, _ = synthetic_model.posterior(y, None, cov / w[:, None, None], align=False)
    np.testing.assert_allclose(mean, gaussian, atol=1e-3)
    # no evidence, and fixed points the model finds plausible (0.05 mm off its mean shape): their weights stay 1
    # (never tighter than the model), so the robust conditional is the Gaussian one
    shape = synthetic_model.mean + rng.normal(scale=0.05, size=(8, 2))
    np.testing.assert_allclose(synthetic_model.refit(shape, [0, 1, 3, 5]),
                               synthetic_model.refit(shape, [0, 1, 3, 5], nu=None), atol=1e-3)


def test_robust_refit_discounts_an_implausible_fixed_point(synthetic_model, perfect):
    """A fixed point 5 mm off a shape the other fixed points determine stays where it is given, but moves the
    points re-fitted from the shape less than under the Gaussian conditional: its shape residual variance ``r``
    becomes ``r / v``, ``v = min(1, (nu + 2) / (nu + d^2))`` with ``d`` its leave-one-out distance from the other
    fixed points (as reweighted), which for the others is the same as evidence of variance ``r (1 / v - 1)`` there."""
    shape = perfect.copy()
    shape[2] += [3.0, 4.0]
    fixed = [0, 1, 2, 3, 4, 6]
    gaussian = np.linalg.norm(synthetic_model.refit(shape, fixed, nu=None) - perfect, axis=1)
    out = synthetic_model.refit(shape, fixed)  # nu = 1
    robust = np.linalg.norm(out - perfect, axis=1)
    np.testing.assert_array_equal(out[fixed], shape[fixed])
    assert gaussian[[5, 7]].max() > 4.0 and robust[[5, 7]].max() < 0.5 * gaussian[[5, 7]].max()
    given = np.where(np.isin(np.arange(8), fixed)[:, None], shape, np.nan)
    v = synthetic_model._fixed_weights(similarity_fit(given, synthetic_model.mean)(shape), np.array(fixed), 1.0)
    assert v[2] < 0.1 and v[[0, 1, 3, 4, 6]].min() > 0.4 and (v[[0, 1, 3, 5, 7]] == 1).all()  # the moved one is doubted
    scale = similarity_fit(perfect, synthetic_model.mean).scale  # image mm -> model mm
    sigma = np.full(8, np.nan)
    sigma[fixed] = np.sqrt(synthetic_model.residual_variance * (1.0 / v[fixed] - 1.0)) / scale
    loose = [i for i in fixed if v[i] < 1.0]
    expected = synthetic_model.refit(shape, [i for i in fixed if i not in loose], np.where(sigma > 0, sigma, np.nan),
                                     nu=None)
    np.testing.assert_allclose(out[[5, 7]], expected[[5, 7]], atol=0.05)


def test_bad_nu(synthetic_model, perfect):
    for nu in (0.0, -1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match="nu .* must be a positive number or None"):
            synthetic_model.refit(perfect, [0, 1], nu=nu)
