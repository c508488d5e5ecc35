"""``LandmarkDetector`` on a bundle that holds a local model too: it runs the two-stage configs by itself, and its
landmarks are those the bundle's own two-stage ``run inferring`` writes (refined), while ``two_stage=False`` gives
the global stage's (the coarse ones of that run)."""

import json
import shutil

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow

from monai_ceph import LandmarkDetector

#: a one-epoch local stage at the phantoms' own 3 mm/px: patches of 48 mm (16 px), a small UNet
LOCAL = {
    "local#spacing": 3.0,
    "local#patch_size": 48.0,
    "local#num_samples": 4,
    "local#network_def#channels": [16, 32, 64],
    "local#network_def#strides": [2, 2],
}


def run(root, configs, workflow_type, **override):
    wf = ConfigWorkflow(config_file=[str(root / "configs" / f"{c}.json") for c in configs],
                        workflow_type=workflow_type, bundle_root=str(root), num_workers=0, **override)
    wf.initialize()
    wf.run()
    wf.finalize()


def written(folder, image_id):
    record = json.loads((folder / f"{image_id}.json").read_text())
    return np.array([[p["x"], p["y"]] for p in record["landmarks"]])


@pytest.fixture(scope="module")
def two_stage_bundle(trained_bundle, phantoms, tmp_path_factory):
    """The tiny trained bundle plus a local stage trained for one epoch beside it (``models/local``)."""
    root = tmp_path_factory.mktemp("api_two_stage") / "bundle"
    shutil.copytree(trained_bundle, root, ignore=shutil.ignore_patterns("eval", "cache"))
    run(root, ["train", "local_train"], "train", datalist_file=str(phantoms), spatial_size=[64, 64], batch_size=2,
        max_epochs=1, save_overlays=False, **LOCAL)
    assert (root / "models" / "local" / "model.pt").is_file()
    return root


@pytest.mark.slow
def test_two_stage_matches_the_bundles_own_run(two_stage_bundle, phantoms, tmp_path):
    with open(phantoms) as f:
        item = json.load(f)["test"][0]
    image = str(phantoms.parent / item["image"])
    out = tmp_path / "eval"
    run(two_stage_bundle, ["train", "local_train", "inference", "two_stage_inference"], "infer",
        datalist_file=str(phantoms), spatial_size=[64, 64], save_overlays=False, output_dir=str(out), **LOCAL)
    refined = written(out / "inference" / "landmarks", item["id"])
    coarse = written(out / "inference" / "coarse_landmarks", item["id"])
    assert not np.allclose(refined, coarse)  # the second stage moved the points: the comparison below can tell

    det = LandmarkDetector.from_bundle(two_stage_bundle, device="cpu", **LOCAL)
    assert det.two_stage  # found models/local/model.pt
    result = det(image, spacing=item["spacing"])
    np.testing.assert_allclose(result.landmarks, refined, atol=1e-4)

    single = LandmarkDetector.from_bundle(two_stage_bundle, device="cpu", two_stage=False)
    assert not single.two_stage
    np.testing.assert_allclose(single(image, spacing=item["spacing"]).landmarks, coarse, atol=1e-4)
