"""The released ISBI 2015 model served by the MONAI Label app (a real server whose bundle has no trained model of its
own) on ten real Test1 images: its landmarks against the figure measured when the model was released
(``pretrained/isbi2015/regression.json``), and the same as the Python API's to 1e-3 px; a re-fit on top of it."""

import json

import numpy as np
import pytest

from ml_server import NO_MONAILABEL, start_server

# the app runs the bundle's own pipeline (both stages, shape refinement, calibration), as the release's evaluation
MARGIN_MM = 0.02
FULL = ["global stage", "local stage", "shape refinement", "calibrated uncertainty"]


@pytest.fixture(scope="module")
def released_server(tmp_path_factory, isbi_dir, released_reference):
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    ref = released_reference
    yield from start_server(tmp_path_factory.mktemp("released"), isbi_dir, image_ids=ref.ids,
                            conf={"spacing": "0.1"})


def test_app_serves_the_released_model(released_server, released_reference):
    ref = released_reference
    results = {i: released_server.infer(i) for i in ref.ids}
    first = results[ref.ids[0]]
    assert first["model"]["kind"] == "released" and first["model_description"].startswith("released model")
    assert first["untrained"] is False and first["pipeline"] == FULL
    assert not any("phantom" in w for r in results.values() for w in r["warnings"])
    predicted = {i: [[lm["x"], lm["y"]] for lm in r["landmarks"]] for i, r in results.items()}
    assert ref.mre(predicted) == pytest.approx(ref.reference["mre_mm"]["full"], abs=MARGIN_MM)
    # the same landmarks as the Python API's (the same bundle pipeline), to 1e-3 px
    from monai_ceph.apps import LandmarkDetector

    api = LandmarkDetector.from_pretrained()(ref.paths[:2], spacing=0.1)
    for r in api:
        np.testing.assert_allclose(predicted[r.id], r.landmarks, atol=1e-3)
    # an annotator's correction: the re-fit keeps the fixed point and re-estimates the others from the evidence
    last = ref.ids[-1]  # the app keeps the evidence of its last 8 images
    moved = [predicted[last][0][0] + 20.0, predicted[last][0][1]]
    refit = released_server.post(f"/infer/cephres?image={last}&output=json",
                                 data={"params": json.dumps({"fixed": {"S": moved}, "missing": []})})
    assert refit.status_code == 200, refit.text
    body = refit.json()
    assert body["cached"] is True and body["landmarks"][0]["fixed"] is True
    np.testing.assert_allclose([body["landmarks"][0]["x"], body["landmarks"][0]["y"]], moved)
