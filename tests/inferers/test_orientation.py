"""OrientationInferer and the orientation maps: the turns match numpy's display rotations, a network that is only
confident on upright images makes the inferer pick the right orientation, and the landmarks come back onto the
image as given to 1e-3 px (single-stage heatmaps and the two-stage inferer, whose local stage refines upright)."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from monai.data import MetaTensor, list_data_collate

from monai_ceph.inferers import (
    ORIENTATIONS,
    OrientationInferer,
    TwoStageInferer,
    UnexpectedOrientationError,
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
