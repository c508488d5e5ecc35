"""OrientationInferer and the orientation maps: the turns match numpy's display rotations, a network that is only
confident on upright images makes the inferer pick the right orientation, and the landmarks come back onto the
image as given to 1e-3 px (single-stage heatmaps and the two-stage inferer, whose local stage refines upright)."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from monai.data import MetaTensor, list_data_collate

from monai_ceph.inferers import (
    ORIENTATIONS,
    OrientationInferer,
    TwoStageInferer,
    from_upright,
    upright,
    upright_matrix,
)
from monai_ceph.inferers.orientation import orientation_warning
from monai_ceph.transforms import GaussianHeatmapCodec, LandmarksToSource, ResizeWithLandmarks
from monai_ceph.transforms.spatial.array import transform_points

CODEC = GaussianHeatmapCodec(sigma=2.0)
SOURCE = (120, 100)  # (x, y)
TRUE = torch.tensor([[30.37, 40.81], [85.6, 62.25]], dtype=torch.float64)
TURNED = ["mirrored", "rotated 90", "rotated 180", "rotated 270"]


def upright_image(size=SOURCE, points=TRUE):
    """Channel k: a codec Gaussian at landmark k; the last channel: the orientation cue, a ramp rising along x and
    twice as fast along y (upright: the profile faces +x, the chin is at +y)."""
    blobs = CODEC.encode(torch.as_tensor(points), size)
    g0, g1 = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in size], indexing="ij")
    return torch.cat([blobs, (0.01 * g0 + 0.02 * g1)[None]])


def is_upright(x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` whether the cue channel of ``x`` rises along dim0 and twice as fast along dim1."""
    d0 = (x[:, -1, 1:] - x[:, -1, :-1]).mean((1, 2))
    d1 = (x[:, -1, :, 1:] - x[:, -1, :, :-1]).mean((1, 2))
    return (d0 > 0) & (d1 > 1.5 * d0)


class FacingOracle(nn.Module):
    """Logits whose sigmoid is the input's landmark channels; 5x flatter unless the cue says upright."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.k = k
        self.calls = nn.Parameter(torch.zeros(()))  # a device for the refiner
        self.seen = []

    def forward(self, x):
        self.seen.append(x)
        logits = torch.logit(x[:, : self.k].clamp(1e-6, 1 - 1e-6))
        scale = torch.where(is_upright(x), 1.0, 0.2)
        return logits * scale[:, None, None, None]


def batch_of(image, filename="/data/ceph_017.png"):
    return MetaTensor(image[None].clone(), meta={"filename_or_obj": [filename]})


def test_the_turns_are_numpy_display_rotations_and_their_pixel_maps():
    """``"rotated 90"`` is an upright radiograph turned 90 degrees counter-clockwise as displayed (rows = y)."""
    display = np.random.default_rng(0).random((5, 7))  # (y, x): 5 rows, 7 columns
    u = torch.as_tensor(display.T.copy())  # MONAI's (x, y)
    given = {"as given": display, "mirrored": display[:, ::-1], "rotated 90": np.rot90(display, 1),
             "rotated 180": np.rot90(display, 2), "rotated 270": np.rot90(display, 3)}
    assert set(given) == set(ORIENTATIONS)
    for name, shown in given.items():
        g = torch.as_tensor(shown.T.copy())
        assert torch.equal(upright(g, name), u) and torch.equal(from_upright(u, name), g)
        m = upright_matrix(name, g.shape)
        pixels = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in g.shape], indexing="ij"), -1)
        to = transform_points(pixels.reshape(-1, 2), m).round().long()
        assert torch.equal(u[to[:, 0], to[:, 1]], g.reshape(-1)), name
    np.testing.assert_array_equal(upright_matrix("mirrored", (7, 5)).numpy(), [[-1, 0, 6], [0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_single_stage_picks_the_orientation_and_maps_the_heatmaps_back_exactly(name):
    network = FacingOracle()
    inferer = OrientationInferer(codec=CODEC, orientations=list(ORIENTATIONS))
    reference = CODEC.decode(network(upright_image()[None]), logits=True)[0][0].double()  # upright, decoded
    given = from_upright(upright_image(), name)
    out = inferer(batch_of(given), network)
    assert out["orientation"] == [name]
    assert tuple(out["pred"].shape) == (1, 2, *given.shape[1:])  # on the grid of the image as given
    points = CODEC.decode(out["pred"], logits=True)[0][0].double()
    expected = transform_points(reference, torch.linalg.inv(upright_matrix(name, given.shape[1:])))
    np.testing.assert_allclose(points.numpy(), expected.numpy(), atol=1e-3)
    np.testing.assert_allclose(reference.numpy(), TRUE.numpy(), atol=0.05)  # the known blobs
    if name == "mirrored":  # x' = W - 1 - x
        np.testing.assert_allclose(points[:, 0].numpy(), SOURCE[0] - 1 - reference[:, 0].numpy(), atol=1e-3)
        np.testing.assert_allclose(points[:, 1].numpy(), reference[:, 1].numpy(), atol=1e-3)
    _, score, _ = inferer.decide(batch_of(given), network)
    assert int(score[0].argmax()) == inferer.orientations.index(name)


def test_the_decision_is_per_image_and_as_given_is_kept_within_the_margin():
    network = FacingOracle()
    images = torch.stack([upright_image(), from_upright(upright_image(), "mirrored")])
    batch = MetaTensor(images, meta={"filename_or_obj": ["a.png", "b.png"]})
    assert OrientationInferer(codec=CODEC)(batch, network)["orientation"] == ["as given", "mirrored"]
    assert OrientationInferer(codec=CODEC, margin=1.0)(batch, network)["orientation"] == ["as given", "as given"]
    only_given = OrientationInferer(codec=CODEC, orientations=["as given"])
    assert only_given.orientations == ("as given",)
    assert only_given(batch, network)["orientation"] == ["as given", "as given"]


def test_a_final_inferer_runs_once_on_the_winning_orientation():
    calls = []

    class Counting:
        def __call__(self, x, network):
            calls.append(x.shape)
            return network(x)

    network = FacingOracle()
    given = from_upright(upright_image(), "rotated 90")
    plain = OrientationInferer(codec=CODEC, orientations=list(ORIENTATIONS))(batch_of(given), network)
    wrapped = OrientationInferer(codec=CODEC, orientations=list(ORIENTATIONS), inferer=Counting())(batch_of(given), network)
    assert wrapped["orientation"] == ["rotated 90"] and calls == [(1, 3, *SOURCE)]  # the upright input, once
    np.testing.assert_allclose(wrapped["pred"].numpy(), plain["pred"].numpy())


def test_orientation_warning_names_what_was_done():
    assert orientation_warning(None) is None and orientation_warning("as given") is None
    assert "flipped left-right" in orientation_warning("mirrored")
    assert "turned back by 270 degrees" in orientation_warning("rotated 270")


def _two_stage_batch(name):
    """The source (3 channels, turned by ``name``) as the local image, its 60 x 50 resize as the model input; the
    upright radiograph has 1 x 2 mm pixels (a quarter turn gives 2 x 1)."""
    source = MetaTensor(from_upright(upright_image(), name))
    source.meta["original_affine"] = source.affine.clone()
    quarter = source.shape[1:] != SOURCE
    model, _, _ = ResizeWithLandmarks(spatial_size=(50, 60) if quarter else (60, 50))(source.clone())
    spacing = torch.tensor([2.0, 1.0] if quarter else [1.0, 2.0])
    return list_data_collate([{"image": model, "local_image": source, "local_spacing": spacing}])


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_two_stage_refines_upright_and_maps_the_points_back_exactly(name):
    local = FacingOracle()
    inferer = TwoStageInferer(
        local, patch_size=(16.0, 32.0), patch_spacing=(1.0, 2.0), codec=CODEC,
        inferer=OrientationInferer(codec=CODEC, orientations=list(ORIENTATIONS)),
    )
    batch = _two_stage_batch(name)
    out = inferer(batch["image"], FacingOracle(), local_image=batch["local_image"], local_spacing=batch["local_spacing"])
    assert out["orientation"] == [name]
    assert all(bool(is_upright(x).all()) for x in local.seen)  # the local network saw upright patches only
    refined = LandmarksToSource()(out["pred_landmarks"][0], batch["image"][0]).double()
    expected = transform_points(TRUE, torch.linalg.inv(upright_matrix(name, batch["local_image"].shape[-2:])))
    np.testing.assert_allclose(refined.numpy(), expected.numpy(), atol=2e-3)
    if name == "mirrored":
        np.testing.assert_allclose(refined[:, 0].numpy(), SOURCE[0] - 1 - TRUE[:, 0].numpy(), atol=2e-3)
    # the covariance comes back through the turn: diagonal upright (x, y independent), swapped by a quarter turn
    cov = out["pred_covariance"][0]
    assert torch.isfinite(cov).all()
    big, small = (1, 0) if name in ("rotated 90", "rotated 270") else (0, 1)
    assert (cov[:, big, big] > 0).all() and (cov[:, small, small] > 0).all()


def test_two_stage_without_an_orientation_inferer_reports_none():
    batch = _two_stage_batch("as given")
    inferer = TwoStageInferer(FacingOracle(), patch_size=16.0, patch_spacing=1.0, codec=CODEC)
    out = inferer(batch["image"], FacingOracle(), local_image=batch["local_image"], local_spacing=batch["local_spacing"])
    assert "orientation" not in out


def _bundle_parser(*names, **override):
    from monai.bundle import ConfigParser

    from monai_ceph.data.locations import default_bundle_dir

    p = ConfigParser()
    p.read_config([str(default_bundle_dir() / "configs" / f"{n}.json") for n in ("train", *names)])
    p.update({"dataset_dir": "unused", "landmark_set": "isbi2015", **override})
    return p


def test_the_bundle_checks_the_orientation_for_inference_and_evaluation_only():
    from monai.inferers import SimpleInferer

    assert type(_bundle_parser().get_parsed_content("validate#inferer")) is SimpleInferer  # training validation
    for names in (("inference",), ("evaluate",)):
        inferer = _bundle_parser(*names).get_parsed_content("validate#inferer")
        assert isinstance(inferer, OrientationInferer) and inferer.orientations == tuple(ORIENTATIONS), names
        assert inferer.inferer is None and inferer.refuse == ()
    two_stage = _bundle_parser("local_train", "inference", "two_stage_inference").get_parsed_content("inferer")
    assert isinstance(two_stage, TwoStageInferer) and isinstance(two_stage.inferer, OrientationInferer)
    off = _bundle_parser("local_train", "inference", "two_stage_inference", orientation=False)
    assert type(off.get_parsed_content("inferer").inferer) is SimpleInferer
    assert type(_bundle_parser("inference", orientation=False).get_parsed_content("inferer")) is SimpleInferer
    refusing = _bundle_parser("inference", orientation_refuse=["rotated 90", "rotated 270"])
    assert refusing.get_parsed_content("inferer").refuse == ("rotated 90", "rotated 270")


def test_the_bundle_post_processing_moves_the_orientation_into_the_item():
    steps = _bundle_parser("inference").get_parsed_content("validate#orientation_outputs")
    heatmaps = torch.rand(2, 8, 8)
    item = {"pred": {"pred": heatmaps, "orientation": "mirrored"}, "image": torch.zeros(1, 8, 8)}
    for step in steps:
        item = step(item)
    assert item["orientation"] == "mirrored" and torch.equal(torch.as_tensor(item["pred"]), heatmaps)


# ------------------------------------------------------------------------------------------ real ISBI radiographs
# The released model (bundles/cephres/pretrained/isbi2015) on a real Test1 image given as it is, mirrored and
# rotated. The mirror's landmarks, mapped back, match the original's only up to the model's own sampling: the
# pre-processing of a mirrored image is not exactly the mirror of the original's (CLAHE's tiles), so the network
# sees a slightly different input; the tolerance is one model pixel (mean) and three (max).

ISBI_IMAGE = "289.jpg"  # the first image of test1_senior.csv, as every ISBI radiograph: profile facing right


@pytest.fixture(scope="module")
def isbi_image(isbi_dir):
    from monai.transforms import LoadImage

    from monai_ceph.data import RadiographReader

    load = LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)
    image = np.asarray(load(str(isbi_dir / "images" / ISBI_IMAGE)), dtype=np.float32)
    return image[:1]  # (1, x, y): the JPEG's three channels are equal


@pytest.fixture(scope="module")
def released():
    from monai_ceph import LandmarkDetector

    return LandmarkDetector.from_pretrained(device="cpu")


def _mirrored_back(landmarks, width):
    back = np.array(landmarks, dtype=np.float64)
    back[:, 0] = width - 1 - back[:, 0]
    return back


def _check_agreement(original, mirrored_back, model_pixel_mm, spacing_mm=0.1):
    d = np.linalg.norm((np.asarray(original) - mirrored_back) * spacing_mm, axis=1)
    assert d.mean() < model_pixel_mm and d.max() < 3 * model_pixel_mm, (d.mean(), d.max(), model_pixel_mm)


def test_api_mirrored_and_rotated_radiographs_are_turned_upright(released, isbi_image):
    assert isinstance(released.parser.get_parsed_content("local#inferer").inferer, OrientationInferer)
    width = isbi_image.shape[1]
    mirrored = isbi_image[:, ::-1].copy()
    rotated = np.rot90(isbi_image, -1, axes=(1, 2)).copy()  # shown turned 90 degrees counter-clockwise
    as_given, back, turned = released([isbi_image, mirrored, rotated], spacing=0.1)
    assert (as_given.orientation, back.orientation, turned.orientation) == ("as given", "mirrored", "rotated 90")
    assert not any("looked" in w for w in as_given.warnings)
    assert any("looked mirrored" in w for w in back.warnings) and back.to_dict()["orientation"] == "mirrored"
    model_pixel = released.parser.get_parsed_content("model_pixel_spacing")
    _check_agreement(as_given.landmarks, _mirrored_back(back.landmarks, width), model_pixel)
    # the mirror's measurements are the original's (the analysis reads the facing side from the points)
    for name in ("SNA", "SNB", "ANB"):
        assert back.measurements[name] == pytest.approx(as_given.measurements[name], abs=3.0), name


def test_bundle_inferring_records_the_orientation_and_maps_back(isbi_image, tmp_path):
    """``python -m monai.bundle run inferring`` with the two-stage configs on a folder holding the image and its
    mirror: every item says which way it faced; the mirror's points written to its landmark file map back."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow
    from PIL import Image

    from monai_ceph.data.locations import default_bundle_dir, pretrained_dir
    from monai_ceph.handlers.utils import decollated_items, engine_output

    folder = tmp_path / "in"
    folder.mkdir()
    pixels = isbi_image[0].T.astype(np.uint8)  # (y, x) rows for PIL
    Image.fromarray(pixels).save(folder / "upright.png")
    Image.fromarray(pixels[:, ::-1].copy()).save(folder / "mirrored.png")
    configs = default_bundle_dir() / "configs"
    models = pretrained_dir()
    names = ["train", "local_train", "inference", "two_stage_inference", "shape_refine"]
    override = {
        "bundle_root": str(tmp_path / "bundle"), "ckpt_dir": str(models), "local#ckpt_dir": str(models / "local"),
        "input_dir": str(folder), "pixel_spacing": 0.1, "landmark_set": "isbi2015", "save_overlays": False,
        "spatial_size": json.loads((models / "model.json").read_text())["spatial_size"], "num_workers": 0,
        "device": "$torch.device('cpu')",
    }
    wf = ConfigWorkflow(config_file=[str(configs / f"{n}.json") for n in names], workflow_type="infer", **override)
    wf.initialize()
    items = []
    wf.parser.get_parsed_content("evaluator").add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: items.extend(decollated_items(engine_output(e)))
    )
    wf.run()
    wf.finalize()
    by_id = {str(d["id"]): d for d in items}
    assert by_id["upright"]["orientation"] == "as given" and by_id["mirrored"]["orientation"] == "mirrored"
    written = {}
    for name in ("upright", "mirrored"):
        record = json.loads((tmp_path / "bundle" / "eval" / "inference" / "landmarks" / f"{name}.json").read_text())
        written[name] = np.array([[lm["x"], lm["y"]] for lm in record["landmarks"]], dtype=np.float64)
        np.testing.assert_allclose(written[name], np.asarray(by_id[name]["pred_landmarks"]), atol=1e-3)
    model_pixel = wf.parser.get_parsed_content("model_pixel_spacing")
    _check_agreement(written["upright"], _mirrored_back(written["mirrored"], isbi_image.shape[1]), model_pixel)


def test_monailabel_infer_task_turns_a_mirrored_radiograph_upright(isbi_image, tmp_path):
    """The MONAI Label app's infer task runs the bundle's inferer: a mirrored radiograph's result says so, and
    its points are the upright image's mapped back."""
    pytest.importorskip("monailabel", reason="MONAI Label is not installed (pip install monai_ceph[monailabel])")
    import shutil

    from PIL import Image

    from monai_ceph.apps.monailabel.config import CephAppConfig
    from monai_ceph.apps.monailabel.infer import CephLandmarkInfer
    from monai_ceph.data.locations import default_bundle_dir
    from monai_ceph.transforms.spatial.field_of_view import physical_pixel_spacing

    bundle = tmp_path / "cephres"
    shutil.copytree(default_bundle_dir() / "configs", bundle / "configs")
    pixels = isbi_image[0].T.astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "upright.png")
    Image.fromarray(pixels[:, ::-1].copy()).save(tmp_path / "mirrored.png")
    config = CephAppConfig.from_conf({"bundle": str(bundle), "spacing": "0.1"})  # the released model
    task = CephLandmarkInfer(config)
    results = {n: task({"image": str(tmp_path / f"{n}.png"), "device": "cpu"})[1] for n in ("upright", "mirrored")}
    assert results["upright"]["orientation"] == "as given" and results["mirrored"]["orientation"] == "mirrored"
    assert any("looked mirrored" in w for w in results["mirrored"]["warnings"])
    points = {n: np.array([[lm["x"], lm["y"]] for lm in r["landmarks"]], dtype=np.float64) for n, r in results.items()}
    # the app runs the bundle's whole pipeline (both stages, shape refinement): the mirror's input differs slightly
    # (CLAHE is not mirror-symmetric), so the points agree to a fraction of a global model pixel, not exactly
    model_pixel = physical_pixel_spacing(config.spatial_size, (200.0, 250.0))  # train.json's physical_field_mm
    d = np.linalg.norm((points["upright"] - _mirrored_back(points["mirrored"], isbi_image.shape[1])) * 0.1, axis=1)
    assert np.median(d) < model_pixel / 2 and (d < model_pixel).sum() >= 17, d
