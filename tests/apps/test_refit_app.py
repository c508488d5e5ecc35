"""Interactive re-fit in the MONAI Label app (issue 12): the request's edit, the re-fit function with values, the
evidence cache, the params check; and on the session's real server (``server`` fixture, conftest.py): uncertainty
in every result, a fixed re-fit on an ISBI image, and the cache hit."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from monai_ceph.data import ISBI2015
from monai_ceph.data.isbi import read_isbi_csv
from monai_ceph.shape import REFIT_NU, ShapeModel

from ml_server import IMAGE_IDS, NO_MONAILABEL

pytest.importorskip("monailabel", reason=NO_MONAILABEL)

from monai_ceph.apps.monailabel.cache import FileWatch, LRUCache  # noqa: E402
from monai_ceph.apps.monailabel.errors import RequestError  # noqa: E402
from monai_ceph.apps.monailabel.refit import Evidence, LandmarkEdit, parse_edit, refit_landmarks  # noqa: E402

K = len(ISBI2015)
SPACING = np.array([0.1, 0.1])


@pytest.fixture(scope="module")
def isbi_truth(isbi_dir):
    """The senior annotations of the ISBI 2015 training images, source pixels."""
    return read_isbi_csv(isbi_dir / "train_senior.csv")


@pytest.fixture(scope="module")
def shape_model(isbi_truth):
    """A shape model of the training images other than the server's three."""
    shapes = np.stack([v for k, v in sorted(isbi_truth.items()) if k not in IMAGE_IDS]) * SPACING
    return ShapeModel.fit(shapes, landmark_set="isbi2015")


def _evidence(points, sd_mm):
    cov = np.zeros((K, 2, 2))
    cov[:, 0, 0] = cov[:, 1, 1] = np.asarray(sd_mm, dtype=float) ** 2
    return Evidence(np.asarray(points, float), cov, np.full(K, 0.5), SPACING, {})


# ------------------------------------------------------------------------------------------------ the edit


def test_parse_edit():
    assert parse_edit({"image": "x"}, ISBI2015) is None
    edit = parse_edit({"fixed": {"Me": [10, 20.5], "sella": [1, 2]}, "missing": ["ar", "Pog'"]}, ISBI2015)
    assert edit.fixed == {7: (10.0, 20.5), 0: (1.0, 2.0)} and edit.missing == (15, 18)
    assert parse_edit({"missing": ["B"]}, ISBI2015) == LandmarkEdit({}, (5,))


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"fixed": [[1, 2]]}, r"request 'fixed': expected an object \{landmark: \[x, y\]\} in source pixels, got list"),
        ({"fixed": {"Xx": [1, 2]}}, r"request 'fixed' entry 'Xx': landmark 'Xx' is not in the isbi2015 landmark set"),
        ({"fixed": {"Me": [1]}}, r"request 'fixed' entry 'Me': expected \[x, y\] in source pixels, got \[1\]"),
        ({"fixed": {"Me": [1, 2, 3]}}, r"entry 'Me': expected \[x, y\]"),
        ({"fixed": {"Me": "1,2"}}, r"entry 'Me': expected \[x, y\] in source pixels, got '1,2'"),
        ({"fixed": {"Me": [float("nan"), 2]}}, r"entry 'Me' x: coordinate nan is not finite"),
        ({"fixed": {"Me": [1, float("inf")]}}, r"entry 'Me' y: coordinate inf is not finite"),
        ({"fixed": {"Me": ["1", 2]}}, r"entry 'Me' x: coordinate '1' is not a number"),
        ({"fixed": {"Me": [True, 2]}}, r"entry 'Me' x: coordinate True is not a number"),
        ({"fixed": {"Me": None}}, r"entry 'Me': expected \[x, y\] in source pixels, got None"),
        ({"fixed": {"Me": [1, 2], "menton": [3, 4]}}, r"entry 'menton': landmark 'Me' is given twice"),
        ({"missing": "Ar"}, r"request 'missing': expected a list of landmark names, got 'Ar'"),
        ({"missing": [3]}, r"request 'missing'\[0\]: expected a landmark abbreviation or name, got 3"),
        ({"missing": ["Ar", "Zz"]}, r"request 'missing'\[1\]: landmark 'Zz' is not in the isbi2015"),
        ({"fixed": {"Ar": [1, 2]}, "missing": ["Ar"]}, r"request 'missing'\[0\]: landmark 'Ar' is also in 'fixed'"),
        ({"missing": ["Ar", "ar"]}, r"request 'missing'\[1\]: landmark 'Ar' is given twice"),
    ],
)
def test_parse_edit_refuses_naming_the_entry(request_, message):
    with pytest.raises(RequestError, match=message):
        parse_edit(request_, ISBI2015)


def test_fixed_point_outside_the_image():
    edit = LandmarkEdit({7: (1935.0, 10.0)}, ())
    edit.check_inside((1936, 2400), ISBI2015)
    with pytest.raises(Exception, match=r"request 'fixed': landmark 'Me' at \(1935, 10\) outside the image of "
                                        r"1935 x 2400 pixels \(x in \[-0.5, 1934.5\]"):
        edit.check_inside((1935, 2400), ISBI2015)


# ------------------------------------------------------------------------------------------------ the re-fit


def test_refit_without_shape_model_applies_the_edit_only():
    points = np.arange(2 * K, dtype=float).reshape(K, 2) + 100
    evidence = _evidence(points, np.full(K, 2.0))
    out, cov, flagged = refit_landmarks(evidence, LandmarkEdit({0: (5.25, 6.5)}, (18,)))
    np.testing.assert_array_equal(out[0], [5.25, 6.5])
    np.testing.assert_array_equal(cov[0], np.zeros((2, 2)))
    assert np.isnan(out[18]).all() and np.isnan(cov[18]).all()
    np.testing.assert_array_equal(out[1:18], points[1:18])
    np.testing.assert_array_equal(cov[1:18], evidence.cov_mm[1:18])
    assert not flagged.any()
    np.testing.assert_array_equal(evidence.landmarks, points)  # the cached evidence is not changed


def test_refit_pulls_wrong_evidence_to_the_shape(shape_model, isbi_truth):
    """Fixed points at the truth of an unseen image: evidence moved 25 mm off (SD 1 mm, so confidently wrong)
    is flagged and the point comes from the shape (within a few mm of the truth); good evidence is kept, fused."""
    truth = isbi_truth["001"]
    rng = np.random.default_rng(0)
    points = truth + rng.normal(0, 5, truth.shape)  # 0.5 mm noise
    wrong = [3, 12, 17]
    points[wrong] += [250.0, -150.0]  # 29 mm
    evidence = _evidence(points, np.full(K, 1.0))
    fixed_idx = [0, 1, 7, 9]
    edit = LandmarkEdit({i: tuple(truth[i]) for i in fixed_idx}, ())
    out, cov, flagged = refit_landmarks(evidence, edit, shape_model)
    np.testing.assert_array_equal(out[fixed_idx], truth[fixed_idx])  # exactly
    assert (cov[fixed_idx] == 0).all()
    assert flagged[wrong].all() and flagged.sum() == len(wrong)
    error_mm = np.linalg.norm(out - truth, axis=1) * 0.1
    assert error_mm[wrong].max() < 8.0  # from 29 mm off
    good = [i for i in range(K) if i not in fixed_idx + wrong]
    before = np.linalg.norm(points - truth, axis=1)[good] * 0.1
    assert error_mm[good].max() < 2.0 and np.abs(error_mm[good] - before).max() < 1.5  # kept near its evidence
    sigma = np.sqrt(np.trace(cov, axis1=1, axis2=2) / 2)
    assert (sigma[good] < 1.0).all() and (sigma[wrong] > 1.0).all()  # fused < evidence SD; the shape alone > it

    # threshold=None flags nothing and changes no point; a Gaussian fusion (nu=None) leaves the confident wrong
    # evidence where it is
    quiet, _, none = refit_landmarks(evidence, edit, shape_model, threshold=None)
    assert not none.any()
    np.testing.assert_array_equal(quiet, out)
    loose, _, _ = refit_landmarks(evidence, edit, shape_model, nu=None)
    assert (np.linalg.norm(loose - truth, axis=1)[wrong] * 0.1 > 20).all()


def test_refit_matches_the_shape_posterior(shape_model, isbi_truth):
    """With evidence of no weight the re-fit is the shape model's conditional given the fixed points."""
    truth = isbi_truth["002"]
    fixed_idx = [0, 1, 7]
    evidence = _evidence(np.full((K, 2), np.nan), np.full(K, np.nan))
    edit = LandmarkEdit({i: tuple(truth[i]) for i in fixed_idx}, (18,))
    out, cov, _ = refit_landmarks(evidence, edit, shape_model)
    given = np.full((K, 2), np.nan)
    given[fixed_idx] = truth[fixed_idx] * 0.1
    mean, post = shape_model.posterior(given, fixed_idx, nu=REFIT_NU)  # the estimator of ShapeModel.refit
    np.testing.assert_allclose(shape_model.refit(given, fixed_idx), mean, atol=1e-12)
    others = [i for i in range(K) if i not in fixed_idx + [18]]
    np.testing.assert_allclose(out[others], mean[others] / 0.1, atol=1e-9)
    np.testing.assert_allclose(cov[others], post[others], atol=1e-12)
    assert np.isnan(out[18]).all()
    with pytest.raises(RequestError, match="two or more fixed or evidence landmarks"):
        refit_landmarks(evidence, LandmarkEdit({0: (1.0, 2.0)}, ()), shape_model)


def test_refit_is_the_shape_models_robust_refit(shape_model, isbi_truth):
    """One estimator: with evidence, the app's re-fit is ``ShapeModel.refit`` on the same points and covariances."""
    truth = isbi_truth["002"]
    rng = np.random.default_rng(3)
    points = truth + rng.normal(0, 15, truth.shape)  # 1.5 mm noise
    points[5] += [120.0, 80.0]  # one point 14 mm off
    evidence = _evidence(points, rng.uniform(1.0, 2.5, K))
    fixed_idx = [0, 7, 9]
    edit = LandmarkEdit({i: tuple(truth[i]) for i in fixed_idx}, ())
    out, _, flagged = refit_landmarks(evidence, edit, shape_model)
    mm = points * 0.1
    mm[fixed_idx] = truth[fixed_idx] * 0.1
    expected = shape_model.refit(mm, fixed_idx, evidence.cov_mm)
    others = [i for i in range(K) if i not in fixed_idx]
    np.testing.assert_allclose(out[others] * 0.1, expected[others], atol=1e-9)
    assert flagged[5] and np.linalg.norm(out[5] - truth[5]) * 0.1 < 5.0  # from 14 mm off (4.2 mm)


def test_lru_cache_and_file_watch(tmp_path):
    cache = LRUCache(2)
    cache.put("a", 1), cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the oldest
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    with pytest.raises(ValueError, match="cache size"):
        LRUCache(0)

    path = tmp_path / "f.txt"
    calls = []
    watch = FileWatch(path, lambda p: calls.append(p) or (None if p is None else path.read_text()))
    assert watch()[0] is None and watch()[1] is None and calls == [None]
    path.write_text("one")
    assert watch()[0] == "one" and watch()[0] == "one" and len(calls) == 2
    path.write_text("two!")
    assert watch()[0] == "two!" and len(calls) == 3


def test_params_check():
    from fastapi import FastAPI, Form, HTTPException
    from fastapi.testclient import TestClient

    from monai_ceph.apps.monailabel.params import check_infer_params, parse_params

    assert parse_params("") == {} and parse_params('{"a": 1}') == {"a": 1}
    with pytest.raises(HTTPException) as error:
        parse_params("{nope")
    assert error.value.status_code == 400 and error.value.detail.startswith("params '{nope': not valid JSON (")
    app = FastAPI()

    @app.post("/infer/{model}")
    async def infer(model: str, image: str = "", params: str = Form("{}")):
        return {"model": model, "image": image, "params": json.loads(params)}

    assert check_infer_params(app) and check_infer_params(app)  # once
    client = TestClient(app)
    assert client.post("/infer/m?image=1", data={"params": '{"fixed": {}}'}).json() == {
        "model": "m", "image": "1", "params": {"fixed": {}}}
    assert client.post("/infer/m").status_code == 200
    for bad, message in [("{nope", "not valid JSON"), ("[1, 2]", "expected a JSON object {...}, got list"),
                         ("null", "got NoneType"), ("5", "got int")]:
        response = client.post("/infer/m", data={"params": bad})
        assert response.status_code == 400 and message in response.json()["detail"], (bad, response.text)


# ------------------------------------------------------------------------------------------------ the server


def _points(result) -> np.ndarray:
    return np.array([[np.nan if e["x"] is None else e["x"], np.nan if e["y"] is None else e["y"]]
                     for e in result["landmarks"]])


def _refit(server, image_id, params):
    response = server.post(f"/infer/cephres?image={image_id}&output=json", data={"params": json.dumps(params)})
    assert response.status_code == 200, response.text
    return response.json()


def test_uncertainty_in_every_result(server):
    result = server.infer("002")
    assert result["calibrated"] is False
    for e in result["landmarks"]:
        cov_px, cov_mm = np.array(e["covariance_px"]), np.array(e["covariance_mm"])
        assert cov_px.shape == (2, 2) and cov_px[0, 1] == cov_px[1, 0] and np.linalg.det(cov_px) > 0
        np.testing.assert_allclose(cov_mm, cov_px * 0.01, rtol=1e-9)
        assert e["sigma_mm"] == pytest.approx(np.sqrt(np.trace(cov_mm) / 2)) and e["fixed"] is False


def test_refit_on_the_server(server, isbi_truth, shape_model):
    """Without a shape model the fixed points are applied and the rest unchanged; with one (written while the
    server runs) the others move to the shape; a second call is a cache hit; bad entries are 400s."""
    truth = isbi_truth["001"]
    plain = server.infer("001")
    fixed_idx = [0, 1, 7, 9]
    fixed = {ISBI2015.abbreviations[i]: [float(v) + 0.25 for v in truth[i]] for i in fixed_idx}
    shape_file = server.bundle / "models" / "shape_model.json"
    assert not shape_file.exists()

    result = _refit(server, "001", {"fixed": fixed, "missing": ["Ar"]})
    assert result["shape_model"] is None and result["cached"] is True
    points = _points(result)
    for i in fixed_idx:
        entry = result["landmarks"][i]
        assert [entry["x"], entry["y"]] == fixed[entry["abbreviation"]] and entry["fixed"] is True
        assert entry["sigma_mm"] == 0.0
    assert result["landmarks"][18]["x"] is None and result["landmarks"][18]["sigma_mm"] is None
    others = [i for i in range(K) if i not in fixed_idx + [18]]
    np.testing.assert_array_equal(points[others], _points(plain)[others])

    shape_model.save(shape_file)
    try:
        result = _refit(server, "001", {"fixed": fixed})
        assert result["shape_model"]["num_shapes"] == shape_model.num_shapes and result["cached"] is True
        points = _points(result)
        assert all([e["x"], e["y"]] == fixed[e["abbreviation"]] for e in result["landmarks"] if e["fixed"])
        others = [i for i in range(K) if i not in fixed_idx]
        error_before = np.linalg.norm(_points(plain) - truth, axis=1)[others].mean() * 0.1
        error_after = np.linalg.norm(points - truth, axis=1)[others].mean() * 0.1
        assert error_after < 6.0 and error_after < error_before, (error_before, error_after)
        assert result["refit_ms"] < 1000 and result["latencies"]["total"] < 2.0
        assert list(result["measurements"]) == list(plain["measurements"])

        # a miss (another spacing) runs the network, then the same request hits
        again = _refit(server, "001", {"fixed": fixed, "spacing": [0.1, 0.1]})
        assert again["cached"] is False
        start = time.perf_counter()
        hit = _refit(server, "001", {"fixed": fixed, "spacing": [0.1, 0.1]})
        assert hit["cached"] is True and time.perf_counter() - start < again["latencies"]["total"]
        np.testing.assert_allclose(_points(hit), _points(again), equal_nan=True)

        for params, message in [
            ({"fixed": {"Me": [5000, 20]}}, "request 'fixed': landmark 'Me' at (5000, 20) outside the image of "
                                           "1935 x 2400 pixels"),
            ({"fixed": {"Mx": [5, 20]}}, "request 'fixed' entry 'Mx': landmark 'Mx' is not in the isbi2015"),
            ({"fixed": {"Me": [5]}}, "request 'fixed' entry 'Me': expected [x, y]"),
            ({"fixed": {"Me": ["a", 5]}}, "request 'fixed' entry 'Me' x: coordinate 'a' is not a number"),
        ]:
            response = server.post("/infer/cephres?image=001&output=json", data={"params": json.dumps(params)})
            assert response.status_code == 400 and message in response.json()["detail"], response.text
        response = server.post("/infer/cephres?image=001&output=json", data={"params": '{"fixed": {"Me": [NaN, 5]}}'})
        assert response.status_code == 400 and "coordinate nan is not finite" in response.json()["detail"]

        # a shape model of another landmark set is refused, naming both
        other = ShapeModel(np.arange(58.0).reshape(29, 2), np.eye(58)[:1], [1.0], 1.0, landmark_set="aariz")
        other.save(shape_file)
        response = server.post("/infer/cephres?image=001&output=json", data={"params": json.dumps({"fixed": fixed})})
        assert response.status_code == 500, response.text
        assert "'aariz'" in response.json()["detail"] and "'isbi2015'" in response.json()["detail"]
    finally:
        shape_file.unlink(missing_ok=True)
