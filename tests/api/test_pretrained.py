"""The released ISBI 2015 model (``bundles/cephres/pretrained/isbi2015``) through the Python API and the command
line on ten real Test1 images: a regression guard of the whole inference path (reading, pre-processing, both
stages, shape refinement, mapping back to source pixels) against the figure measured when the model was released
(``regression.json``, the same images through the bundle's evaluation; MODEL_CARD.md)."""

import json

import pytest

from monai_ceph.apps import LandmarkDetector
from monai_ceph.cli import main

# the API and the CLI run the same pipeline as the release's bundle evaluation: only float noise may differ
MARGIN_MM = 0.02
FULL = ["global stage", "local stage", "shape refinement", "calibrated uncertainty"]


def test_api_reproduces_the_released_figure(released_reference):
    ref = released_reference
    det = LandmarkDetector.from_pretrained()
    assert det.model["kind"] == "released" and det.model["name"] == "cephres-isbi2015"
    assert det.pipeline == FULL
    results = det(ref.paths, spacing=0.1)
    mre = ref.mre({r.id: r.landmarks for r in results})
    assert mre == pytest.approx(ref.reference["mre_mm"]["full"], abs=MARGIN_MM)
    for r in results:
        assert r.model == det.model and r.pipeline == FULL
        assert not any("phantom" in w for w in r.warnings)
        assert r.sigma_mm is not None and (r.sigma_mm > 0).all()
        record = r.to_dict()
        assert record["model"]["kind"] == "released" and record["pipeline"] == FULL


def test_from_bundle_without_a_model_uses_the_released_one(tmp_path):
    (tmp_path / "configs").mkdir()
    from monai_ceph.data.locations import default_bundle_dir, pretrained_dir
    import shutil

    shutil.copytree(default_bundle_dir() / "configs", tmp_path / "configs", dirs_exist_ok=True)
    det = LandmarkDetector.from_bundle(tmp_path)
    assert det.model["kind"] == "released"
    assert det.parser.get_parsed_content("ckpt_path") == str(pretrained_dir() / "model.pt")
    single = LandmarkDetector.from_pretrained(two_stage=False, shape_refine=False)
    assert single.pipeline == ["global stage", "calibrated uncertainty"]


def test_cli_reproduces_the_released_figure(released_reference, tmp_path, capsys):
    ref = released_reference
    out = tmp_path / "out"
    assert main(["detect", *ref.paths, "--spacing", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("released model cephres-isbi2015 1.0.0; pipeline: " + ", ".join(FULL))
    assert "phantom demo" not in printed
    records = json.loads((out / "detections.json").read_text())
    predicted = {r["id"]: [[lm["x"], lm["y"]] for lm in r["landmarks"]] for r in records}
    assert ref.mre(predicted) == pytest.approx(ref.reference["mre_mm"]["full"], abs=MARGIN_MM)
    per_image = json.loads((out / "landmarks" / f"{ref.ids[0]}.json").read_text())
    assert per_image["model"]["kind"] == "released"
