"""The released ISBI 2015 model served by the MONAI Label app (a real server whose bundle has no trained model of its
own) on ten real Test1 images: its landmarks against the figure measured when the model was released
(``pretrained/isbi2015/regression.json``)."""

import pytest

from ml_server import NO_MONAILABEL, start_server

# the app runs the released model's global stage with its own post-processing: the same decoding as the release's
# coarse points, up to float noise
MARGIN_MM = 0.05


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
    assert first["untrained"] is False and first["warnings"] == []
    predicted = {i: [[lm["x"], lm["y"]] for lm in r["landmarks"]] for i, r in results.items()}
    assert ref.mre(predicted) == pytest.approx(ref.reference["mre_mm"]["global"], abs=MARGIN_MM)
