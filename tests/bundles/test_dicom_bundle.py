"""A DICOM folder through the cephres bundle's ``evaluating`` and ``inferring`` (issue 14): MONOCHROME1 and
MONOCHROME2, with and without spacing tags, run end to end by ``ConfigWorkflow`` at 32 x 32 with a random-weight
checkpoint (no training: the network only has to be a fixed function of its input).

Each phantom is written four times: MONOCHROME2 and MONOCHROME1 (the negative stored, so the same picture), each
with a ``PixelSpacing`` tag of an anisotropic spacing, and without any spacing tag (the spacing then given in the
datalist, or ``input_spacing`` for a folder). A fifth copy, the negative labelled MONOCHROME2, is the control that
makes the MONOCHROME1 comparison able to fail: the network sees it as another picture and puts the landmarks
elsewhere. The overlays re-read every DICOM source, so they are written too.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai.bundle import ConfigParser, ConfigWorkflow
from monai_ceph.data import get_landmark_set
from monai_ceph.handlers import model_settings

ISBI = get_landmark_set("isbi2015")
TAG_SPACING = (0.25, 0.2)  # (sx, sy) mm/pixel; DICOM PixelSpacing is stored (row = y, column = x)
GIVEN_SPACING = 0.3  # mm/pixel for the files without spacing tags
FIELD_MM = 25.0  # the physical field of the model input, mm
KINDS = {  # file suffix -> (photometric interpretation, stores the negative, has spacing tags)
    "m2_tags": ("MONOCHROME2", False, True),
    "m1_tags": ("MONOCHROME1", True, True),
    "m2_none": ("MONOCHROME2", False, False),
    "m1_none": ("MONOCHROME1", True, False),
}
CONTROL = "negative_m2"  # the negative, labelled MONOCHROME2: another picture for the network


@pytest.fixture(scope="module")
def bundle(bundles_dir, tmp_path_factory):
    """A bundle root whose models/ hold a seeded random-weight model.pt and its model.json, at 32 x 32."""
    configs = bundles_dir / "cephres" / "configs"
    root = tmp_path_factory.mktemp("dicom_bundle")
    # the physical-scale input at a field that fits these 16 x 16 mm (tags) and 19.2 x 24 mm (0.3 mm) images
    override = {"bundle_root": str(root), "spatial_size": [32, 32], "batch_size": 1, "num_workers": 0,
                "physical_field_mm": [FIELD_MM, FIELD_MM]}
    parser = ConfigParser()
    parser.read_config(str(configs / "train.json"))
    parser.update({**override, "landmark_set": ISBI.name})  # not from a datalist: nothing resolved, nothing written
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = parser.get_parsed_content("network_def")
    models = root / "models"
    models.mkdir()
    torch.save(network.state_dict(), models / "model.pt")
    settings = model_settings(override["spatial_size"], ISBI.name, parser.get_parsed_content("codec"),
                              parser.get_parsed_content("input_scaling"))
    (models / "model.json").write_text(json.dumps(settings))
    return configs, override


def write_dicoms(folder, phantom_datalist, write_dicom):
    """The first test phantom as DICOM files ``<id>_<kind>.dcm`` (:data:`KINDS` and :data:`CONTROL`); returns
    ``{name: {"image", "spacing", "landmarks"}}`` with the spacing each file's mm must use."""
    folder.mkdir()
    items = json.loads(phantom_datalist.read_text())["test"][:1]  # one phantom: five files a run
    written = {}
    for item in items:
        with Image.open(phantom_datalist.parent / item["image"]) as png:
            pixels = np.asarray(png, dtype=np.uint16)  # (rows, cols) = (y, x)
        negative = pixels.max() + pixels.min() - pixels
        tags = {"PixelSpacing": [TAG_SPACING[1], TAG_SPACING[0]]}
        for kind, (interpretation, stores_negative, tagged) in {**KINDS, CONTROL: ("MONOCHROME2", True, True)}.items():
            name = f"{item['id']}_{kind}"
            path = write_dicom(folder / f"{name}.dcm", negative if stores_negative else pixels,
                               PhotometricInterpretation=interpretation, **(tags if tagged else {}))  # fmt: skip
            spacing = TAG_SPACING if tagged else (GIVEN_SPACING, GIVEN_SPACING)
            written[name] = {"image": str(path), "spacing": list(spacing), "landmarks": item["landmarks"]}
    return written


def run(configs, overlay, workflow_type, **override):
    files = [str(configs / "train.json"), str(configs / f"{overlay}.json")]
    wf = ConfigWorkflow(config_file=files, workflow_type=workflow_type, **override)
    wf.initialize()
    wf.run()  # no SystemExit: nothing was skipped
    wf.finalize()
    return wf.parser.get_parsed_content("batch_summary")


def read_reports(results, expected):
    """{name: (19, 2) predicted source pixels} of ``results/landmarks``, after checking each report's source path,
    spacing and mm against ``expected`` and that every overlay was written at half the 64 x 80 source."""
    assert sorted(p.stem for p in (results / "landmarks").glob("*.json")) == sorted(expected)
    assert json.loads((results / "failed.json").read_text()) == []
    points = {}
    for name, item in expected.items():
        report = json.loads((results / "landmarks" / f"{name}.json").read_text())
        assert report["source"] == item["image"] and report["landmark_set"] == ISBI.name
        np.testing.assert_allclose(report["spacing"], item["spacing"], rtol=1e-6)
        xy = np.array([[p["x"], p["y"]] for p in report["landmarks"]])
        assert xy.shape == (len(ISBI), 2) and np.isfinite(xy).all()
        # decoding stays inside the image; sub-pixel decoding of an edge pixel may reach one model pixel past it
        margin = FIELD_MM / 32 / np.array(item["spacing"])
        assert (xy >= -0.5 - margin).all() and (xy <= np.array([64, 80]) - 0.5 + margin).all(), xy
        np.testing.assert_allclose([[p["x_mm"], p["y_mm"]] for p in report["landmarks"]], xy * item["spacing"],
                                   rtol=1e-6)  # fmt: skip
        with Image.open(results / "overlays" / f"{name}.png") as overlay:
            assert overlay.size == (32, 40)
        points[name] = xy
    return points


def check_interpretation(points, ids):
    """MONOCHROME1 gives the landmarks of MONOCHROME2 of the same pixels and spacing, with or without tags; the
    negative read as MONOCHROME2 does not. (The physical-scale input makes the landmarks depend on the spacing, so
    the tagged and the tagless files are compared among themselves.)"""
    for image_id in ids:
        for tags in ("tags", "none"):
            reference = points[f"{image_id}_m2_{tags}"]
            np.testing.assert_allclose(points[f"{image_id}_m1_{tags}"], reference, atol=1e-4, err_msg=tags)
        assert np.abs(points[f"{image_id}_{CONTROL}"] - points[f"{image_id}_m2_tags"]).max() > 1.0


def test_evaluating_a_dicom_datalist(bundle, phantom_datalist, tmp_path, write_dicom):
    """A datalist of DICOM files with landmarks: the tagged files give no spacing (their header's is used), the
    tagless ones give it; errors in mm use each file's spacing."""
    configs, override = bundle
    written = write_dicoms(tmp_path / "dicom", phantom_datalist, write_dicom)
    entries = [{"id": name, "image": item["image"], "landmarks": item["landmarks"]}
               | ({} if item["spacing"] == list(TAG_SPACING) else {"spacing": item["spacing"]})
               for name, item in written.items()]  # fmt: skip
    assert sum("spacing" not in e for e in entries) == 3
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "test": entries}))
    summary = run(configs, "evaluate", "eval", datalist_file=str(datalist), output_dir=str(tmp_path / "out"),
                  **override)  # fmt: skip
    assert (summary.done, summary.failures) == (len(written), [])
    results = tmp_path / "out" / "test"
    points = read_reports(results, written)
    for name, item in written.items():
        report = json.loads((results / "landmarks" / f"{name}.json").read_text())
        gt = np.array([[p["gt_x"], p["gt_y"]] for p in report["landmarks"]])
        np.testing.assert_allclose(gt, item["landmarks"], atol=1e-3)
        error = np.hypot(*((points[name] - gt) * item["spacing"]).T)
        np.testing.assert_allclose([p["error_mm"] for p in report["landmarks"]], error, rtol=1e-5, atol=1e-6)
    check_interpretation(points, [name[: -len("_m2_tags")] for name in written if name.endswith("_m2_tags")])


def test_inferring_a_dicom_folder(bundle, phantom_datalist, tmp_path, write_dicom):
    """``--input_dir`` of DICOM files: the tagged ones take their header's spacing, the others ``input_spacing``."""
    configs, override = bundle
    written = write_dicoms(tmp_path / "dicom", phantom_datalist, write_dicom)
    summary = run(configs, "inference", "infer", input_dir=str(tmp_path / "dicom"), input_spacing=GIVEN_SPACING,
                  output_dir=str(tmp_path / "out"), **override)  # fmt: skip
    assert (summary.done, summary.failures) == (len(written), [])
    points = read_reports(tmp_path / "out" / "inference", written)
    check_interpretation(points, [name[: -len("_m2_tags")] for name in written if name.endswith("_m2_tags")])
    assert not (Path(override["bundle_root"]) / "data").exists()  # no phantoms written by a folder run
