"""LandmarkPatches / LandmarkPatchesd / RandLandmarkPatchd: patches at a local spacing that carry landmarks exactly,
and predictions that go back to source pixels through the same mechanism as LandmarksToSourced."""

import numpy as np
import pytest
import torch

from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose

from monai_ceph.transforms import LandmarksToSourced, ResizeWithLandmarksd
from monai_ceph.transforms.spatial.patches import (
    LandmarkPatches,
    LandmarkPatchesD,
    LandmarkPatchesd,
    LandmarkPatchesDict,
    RandLandmarkPatchD,
    RandLandmarkPatchd,
    RandLandmarkPatchDict,
    landmarks_in_patches,
)

TYPES = [np.asarray, torch.as_tensor, MetaTensor]
SOURCE = (300, 240)
SPACING = (0.1, 0.12)
CENTRE = (131.37, 97.81)


def source_image(image):
    """``image`` as a MetaTensor whose source affine is recorded (as LoadLandmarksd does)."""
    out = MetaTensor(torch.as_tensor(image))
    out.meta["original_affine"] = out.affine.clone()
    return out


def test_aliases():
    assert LandmarkPatchesD is LandmarkPatchesDict is LandmarkPatchesd
    assert RandLandmarkPatchD is RandLandmarkPatchDict is RandLandmarkPatchd


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize(
    "patch_spacing,offset",
    [((0.1, 0.12), (0.0, 0.0)), ((0.1, 0.12), (7.3, -4.6)), ((0.25, 0.3), (2.2, 3.1)), ((0.05, 0.06), (-1.7, 0.4))],
)
def test_blob_lands_on_the_carried_landmark(as_type, patch_spacing, offset, blob_image, intensity_centroid):
    """A sub-pixel blob: its centroid in the patch is the carried landmark, which maps back to the source to 1e-3 px."""
    image = as_type(blob_image(SOURCE, CENTRE, sigma=6.0).numpy())
    centre = torch.tensor([CENTRE]) + torch.tensor([offset])
    patcher = LandmarkPatches(patch_size=(8.0, 9.6), patch_spacing=patch_spacing)
    patches, local, matrices = patcher(image, centre, torch.tensor(SPACING), landmarks=torch.tensor([CENTRE]))
    expected_size = (round(8.0 / patch_spacing[0]), round(9.6 / patch_spacing[1]))
    assert patcher.spatial_size == expected_size
    assert len(patches) == 1 and type(patches[0]) is type(image) and tuple(patches[0].shape) == (1, *expected_size)
    np.testing.assert_allclose(intensity_centroid(patches[0]), local[0, 0].numpy(), atol=1e-3)
    back = (matrices[0] @ torch.tensor([*local[0, 0].double(), 1.0], dtype=torch.float64))[:2]
    np.testing.assert_allclose(back.numpy(), CENTRE, atol=1e-3)
    # the patch is centred on the requested point within half an image pixel (its origin is on the image grid)
    half = (torch.tensor(expected_size, dtype=torch.float64) - 1) / 2
    patch_centre = matrices[0, :2, :2].diagonal() * half + matrices[0, :2, 2]
    assert (patch_centre - centre[0].double()).abs().max() <= 0.5 + 1e-9
    assert torch.equal(matrices[0, :2, 2], torch.round(matrices[0, :2, 2]))


def test_crop_at_the_image_spacing_copies_pixels():
    image = torch.arange(20 * 30, dtype=torch.float32).reshape(1, 20, 30)
    patches, _, m = LandmarkPatches(patch_size=6.0, patch_spacing=1.0)(image, torch.tensor([[9.2, 14.7]]), (1.0, 1.0))
    o0, o1 = int(m[0, 0, 2]), int(m[0, 1, 2])
    assert (o0, o1) == (7, 12)  # round(9.2 - 2.5), round(14.7 - 2.5)
    torch.testing.assert_close(patches[0], image[:, o0 : o0 + 6, o1 : o1 + 6])


def test_outside_and_larger_than_the_image_is_padded():
    image = torch.ones(1, 10, 12)
    patcher = LandmarkPatches(patch_size=16.0, patch_spacing=1.0)  # larger than the image
    points = torch.tensor([[5.0, 6.0], [-20.0, 3.0]])
    patches, local, m = patcher(image, points, (1.0, 1.0), landmarks=torch.tensor([[2.0, 3.0], [np.nan, np.nan]]))
    assert tuple(patches[0].shape) == (1, 16, 16)
    assert patches[0].sum() == 10 * 12  # the whole image inside, zeros around
    # a point 20 px outside the image: a patch of padding only; the landmark is outside that patch -> NaN
    assert patches[1].abs().sum() == 0
    assert torch.isnan(local[1]).all() and torch.isnan(local[:, 1]).all()
    np.testing.assert_allclose(local[0, 0].numpy(), [2.0 - m[0, 0, 2].item(), 3.0 - m[0, 1, 2].item()])


def test_nan_centre_gives_an_empty_patch_and_nan_landmarks():
    image = torch.ones(1, 10, 12)
    patches, local, m = LandmarkPatches(4.0, 1.0)(image, torch.tensor([[np.nan, 4.0]]), (1.0, 1.0), torch.ones(2, 2))
    assert patches[0].abs().sum() == 0 and torch.isnan(local).all() and torch.isnan(m[0, :2, 2]).any()


def test_landmarks_outside_a_patch_are_nan():
    m = LandmarkPatches(4.0, 1.0).patch_to_image(torch.tensor([[10.0, 10.0]]), (1.0, 1.0))
    pts = np.array([[10.0, 10.0], [11.4, 10.0], [11.5, 10.0], [8.0, 7.4]])
    local = landmarks_in_patches(pts, m, (4, 4))
    assert isinstance(local, np.ndarray) and local.shape == (1, 4, 2)
    # origin round(10 - 1.5) = 8 per dim: the patch covers image pixels 8..11
    np.testing.assert_allclose(local[0, :2], [[2.0, 2.0], [3.4, 2.0]])
    assert np.isnan(local[0, 2:]).all()  # 11.5 - 8 = 3.5 >= 4 - 0.5; 7.4 - 8 < -0.5


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), (1.0, 2.0, 3.0)])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        LandmarkPatches(patch_size=bad, patch_spacing=0.3)
    with pytest.raises(ValueError):
        LandmarkPatches(patch_size=19.2, patch_spacing=bad)


def _item(blob_image):
    points = torch.tensor([CENTRE, (40.25, 200.5), (np.nan, np.nan)], dtype=torch.float32)
    image = source_image(blob_image(SOURCE, CENTRE, sigma=4.0))
    return {"image": image, "landmarks": points, "spacing": torch.tensor(SPACING), "id": "blob"}


def test_dictionary_patches_go_back_to_source_like_the_model_predictions(blob_image, intensity_centroid):
    """After a resize to the local spacing, a patch's MetaTensor affine maps its pixels to the source pixels:
    LandmarksToSourced on the patch item returns the source landmarks and the source spacing."""
    item = _item(blob_image)
    chain = Compose(
        [
            ResizeWithLandmarksd(keys="image", spatial_size=None, pixel_spacing=(0.2, 0.24)),
            LandmarkPatchesd(keys="image", patch_size=(6.4, 7.68), patch_spacing=(0.2, 0.24), indices=[0, 1, 2]),
        ]
    )
    out = chain(item)
    assert isinstance(out, list) and len(out) == 3
    assert [o["patch_landmark"] for o in out] == [0, 1, 2]
    first = out[0]
    assert tuple(first["image"].shape) == (1, 32, 32)
    np.testing.assert_allclose(first["spacing"].numpy(), (0.2, 0.24), rtol=1e-6)
    np.testing.assert_allclose(first["landmark_mask"].numpy(), [1, 0, 0])
    np.testing.assert_allclose(intensity_centroid(first["image"]), first["landmarks"][0].numpy(), atol=0.05)
    back = LandmarksToSourced(keys="landmarks", ref_key="image", spacing_key="spacing")(first)
    np.testing.assert_allclose(back["landmarks"][0].numpy(), CENTRE, atol=1e-3)
    assert torch.isnan(back["landmarks"][1:]).all()
    np.testing.assert_allclose(back["spacing"].numpy(), SPACING, rtol=1e-5)
    second = LandmarksToSourced(keys="landmarks", ref_key="image")(out[1])
    np.testing.assert_allclose(second["landmarks"][1].numpy(), (40.25, 200.5), atol=1e-3)
    assert torch.isnan(out[2]["landmarks"]).all() and out[2]["image"].abs().sum() == 0  # NaN centre
    assert out[0]["id"] == "blob"


def test_rand_patch_samples_annotated_landmarks_with_bounded_jitter(blob_image):
    item = _item(blob_image)
    sampler = RandLandmarkPatchd(keys="image", patch_size=4.8, patch_spacing=0.1, num_samples=20, jitter=(0.5, 0.6))
    sampler.set_random_state(seed=3)
    out = sampler(item)
    assert len(out) == 20
    chosen = {o["patch_landmark"] for o in out}
    assert chosen == {0, 1}  # never the missing landmark
    shifts = []
    for o in out:
        k = o["patch_landmark"]
        landmark = o["landmarks"][k].double()
        assert torch.isfinite(landmark).all()
        centre = (torch.tensor(o["image"].shape[1:], dtype=torch.float64) - 1) / 2
        shifts.append((landmark - centre).numpy())
    shifts = np.abs(np.array(shifts))
    # in patch pixels (0.1 mm): jitter 0.5 mm = 5 px and 0.6 mm = 6 px, plus the snap to half an image pixel
    # (0.1 mm = 0.5 px, 0.12 mm = 0.6 px)
    assert (shifts.max(0) <= np.array([5.5, 6.6]) + 1e-6).all() and (shifts.max(0) > 2.5).all()
    # the same seed draws the same patches
    again = RandLandmarkPatchd(keys="image", patch_size=4.8, patch_spacing=0.1, num_samples=20, jitter=(0.5, 0.6))
    again.set_random_state(seed=3)
    assert [o["patch_landmark"] for o in again(item)] == [o["patch_landmark"] for o in out]


def test_rand_patch_single_sample_is_a_dict_and_batches(blob_image):
    sampler = RandLandmarkPatchd(keys="image", patch_size=3.2, patch_spacing=0.1, jitter=0.0)
    sampler.set_random_state(seed=0)
    one = sampler(_item(blob_image))
    assert isinstance(one, dict)
    k = one["patch_landmark"]
    np.testing.assert_allclose(one["landmarks"][k].numpy(), [15.5, 15.5], atol=0.5 + 1e-6)
    loader = DataLoader(Dataset([_item(blob_image)] * 2, transform=sampler), batch_size=2)
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (2, 1, 32, 32) and tuple(batch["patch_affine"].shape) == (2, 3, 3)


def test_no_annotated_landmark_is_a_clear_error(blob_image):
    item = _item(blob_image)
    item["landmarks"] = torch.full((3, 2), float("nan"))
    with pytest.raises(ValueError, match="blob.*no finite landmark"):
        RandLandmarkPatchd(keys="image", patch_size=3.2, patch_spacing=0.1)(item)
    del item["spacing"]
    with pytest.raises(KeyError, match="spacing"):
        LandmarkPatchesd(keys="image", patch_size=3.2, patch_spacing=0.1)(item)
