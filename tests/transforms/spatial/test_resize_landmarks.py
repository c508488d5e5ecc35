import csv

import numpy as np
import pytest
import torch

from monai.data import DataLoader, Dataset, MetaTensor, decollate_batch
from monai.transforms import Compose, Invertd, LoadImaged, Resize

from monai_ceph.transforms import (
    MODEL_SPATIAL_SIZE,
    GaussianHeatmapCodec,
    HeatmapToLandmarksd,
    LandmarksToHeatmapd,
    LandmarksToSource,
    LandmarksToSourceD,
    LandmarksToSourced,
    LandmarksToSourceDict,
    EnsureLandmarksd,
    ResizeWithLandmarks,
    ResizeWithLandmarksD,
    ResizeWithLandmarksd,
    ResizeWithLandmarksDict,
    landmarks_to_source,
    model_to_source_affine,
)

TYPES = [np.asarray, torch.as_tensor, MetaTensor]
SOURCE = (300, 240)
CENTRE = (131.37, 97.81)
SPACING = (0.1, 0.12)

# (kwargs, output spatial size, new spacing) with SOURCE = (300, 240) and SPACING = (0.1, 0.12)
CASES = [
    ({"spatial_size": (96, 120)}, (96, 120), (0.1 * 300 / 96, 0.12 * 240 / 120)),  # down in dim0, up in dim1
    ({"spatial_size": (450, 400)}, (450, 400), (0.1 * 300 / 450, 0.12 * 240 / 400)),  # up
    # physical extent 30 x 28.8 mm into 128 x 128: 30 / 128 mm/px -> 128 x 123 (round(28.8 / 0.234375) = 123)
    ({"spatial_size": (128, 128), "keep_aspect": True}, (128, 128), (0.1 * 300 / 128, 0.12 * 240 / 123)),
    ({"spatial_size": None, "target_spacing": (0.25, 0.3)}, (120, 96), (0.25, 0.3)),
    ({"spatial_size": (100, 100), "target_spacing": 0.25}, (100, 100), (0.25, 0.12 * 240 / 115)),  # crop + pad
]


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize("kwargs,out_size,new_spacing", CASES)
def test_blob_lands_on_the_carried_landmark(as_type, kwargs, out_size, new_spacing, blob_image, intensity_centroid):
    image = as_type(blob_image(SOURCE, CENTRE, sigma=8.0).numpy())
    out, landmarks, spacing = ResizeWithLandmarks(**kwargs)(image, torch.tensor([CENTRE]), torch.tensor(SPACING))
    assert type(out) is type(image) and tuple(out.shape) == (1, *out_size)
    np.testing.assert_allclose(intensity_centroid(out), landmarks[0].numpy(), atol=0.05)
    np.testing.assert_allclose(spacing.numpy(), new_spacing, rtol=1e-6)


@pytest.mark.parametrize("kwargs,out_size,new_spacing", CASES)
def test_inverse_maps_back_to_source_pixels(kwargs, out_size, new_spacing):
    image = MetaTensor(torch.zeros(1, *SOURCE))
    points = torch.tensor([CENTRE, (0.0, 0.0), (299.0, 239.0), (np.nan, np.nan)], dtype=torch.float32)
    out, landmarks, _ = ResizeWithLandmarks(**kwargs)(image, points, torch.tensor(SPACING))
    back = LandmarksToSource()(landmarks, out)
    np.testing.assert_allclose(back.numpy(), points.numpy(), atol=1e-3)
    assert torch.isnan(landmarks[3]).all()


def test_resize_affine_follows_the_pixel_centre_convention():
    """MONAI's Resize (align_corners=False) samples source (dst + 0.5) * old / new - 0.5, and records exactly that."""
    image = MetaTensor(torch.zeros(1, 300, 240))
    out = Resize((96, 120), mode="bilinear")(image)
    image.meta["original_affine"] = image.affine
    out.meta["original_affine"] = image.affine
    dst = torch.tensor([[0.0, 0.0], [95.0, 119.0], [10.5, 3.25]])
    expected = (dst.double() + 0.5) * torch.tensor([300 / 96, 240 / 120], dtype=torch.float64) - 0.5
    np.testing.assert_allclose(landmarks_to_source(dst, out).numpy(), expected.numpy(), atol=1e-5)
    # and it is the sampling of torch.nn.functional.interpolate: a ramp along dim0 resamples to these positions
    ramp = MetaTensor(torch.arange(300, dtype=torch.float32)[None, :, None].expand(1, 300, 240).clone())
    resized = Resize((150, 240), mode="bilinear")(ramp)
    np.testing.assert_allclose(resized[0, 1:-1, 0].numpy(), ((np.arange(1, 149) + 0.5) * 2 - 0.5), atol=1e-4)


def test_default_size_is_the_model_size_and_keeps_metadata():
    image = MetaTensor(torch.zeros(3, 1935 // 8, 2400 // 8), meta={"filename_or_obj": "001.jpg"})
    out, _, _ = ResizeWithLandmarks()(image)
    assert MODEL_SPATIAL_SIZE == (576, 736) and out.shape == (3, 576, 736)
    assert out.meta["filename_or_obj"] == "001.jpg"
    assert [op["class"] for op in out.applied_operations] == ["ResizeWithLandmarks"]


def test_keep_aspect_pads_symmetrically(blob_image):
    image = MetaTensor(blob_image((200, 100), (100.0, 50.0), sigma=4.0) + 1.0)  # > 1 everywhere
    out, landmarks, spacing = ResizeWithLandmarks(spatial_size=(100, 100), keep_aspect=True)(
        image, torch.tensor([[100.0, 50.0]]), torch.tensor([0.1, 0.1])
    )
    assert out.shape == (1, 100, 100)
    assert out[0, :, :25].abs().max() == 0 and out[0, :, 75:].abs().max() == 0
    assert out[0, 2:-2, 27:73].min() >= 0.999  # (MONAI's anti-aliasing filter zero-pads: the outer pixels darken)
    # 200 -> 100 in dim0 (scale 2), 100 -> 50 in dim1 padded by 25: (100 + 0.5) / 2 - 0.5 = 49.75; 25 + 24.75
    np.testing.assert_allclose(landmarks.numpy(), [[49.75, 49.75]], atol=1e-5)
    np.testing.assert_allclose(spacing.numpy(), [0.2, 0.2], rtol=1e-6)


def test_points_cropped_away_keep_their_coordinates_and_lose_visibility():
    data = {"image": MetaTensor(torch.zeros(1, 400, 100)), "landmarks": torch.tensor([[5.0, 50.0], [200.0, 50.0]]),
            "spacing": torch.tensor([0.1, 0.1])}
    d = ResizeWithLandmarksd(spatial_size=(100, 100), target_spacing=0.2)(data)  # 200 x 50, centre crop/pad
    # dim0: 400 -> 200 (x 0.5), crop 50 each side; dim1: 100 -> 50, pad 25
    np.testing.assert_allclose(d["landmarks"].numpy(), [[(5.5 / 2 - 0.5) - 50, 49.75], [49.75, 49.75]], atol=1e-5)
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [0.0, 1.0])
    np.testing.assert_allclose(d["spacing"].numpy(), [0.2, 0.2], rtol=1e-6)


def test_dictionary_version_inverse_and_invertd(blob_image, intensity_centroid):
    data = {"image": MetaTensor(blob_image(SOURCE, CENTRE, sigma=8.0)), "landmarks": torch.tensor([CENTRE]),
            "spacing": torch.tensor(SPACING)}
    resize = ResizeWithLandmarksd(spatial_size=(128, 128), keep_aspect=True)
    d = resize(data)
    assert d["image"].shape == (1, 128, 128)
    np.testing.assert_allclose(intensity_centroid(d["image"]), d["landmarks"][0].numpy(), atol=0.05)
    # MONAI's Invertd brings a model-resolution prediction (here: the resized image) back to the source grid
    d["pred"] = d["image"].clone()
    inverted = Invertd(keys="pred", transform=Compose([resize]), orig_keys="image", nearest_interp=False)(d)
    assert inverted["pred"].shape == (1, *SOURCE)
    np.testing.assert_allclose(intensity_centroid(inverted["pred"]), CENTRE, atol=0.05)
    # the transform's own inverse moves the image and its companions back
    back = resize.inverse(d)
    assert back["image"].shape == (1, *SOURCE) and back["image"].applied_operations == []
    np.testing.assert_allclose(back["landmarks"].numpy(), [CENTRE], atol=1e-3)
    np.testing.assert_allclose(back["spacing"].numpy(), SPACING, rtol=1e-5)
    np.testing.assert_allclose(intensity_centroid(back["image"]), CENTRE, atol=0.05)
    assert ResizeWithLandmarksD is ResizeWithLandmarksDict is ResizeWithLandmarksd


def test_inverse_survives_collate_and_decollate():
    sizes = [(300, 240), (200, 260)]
    items = [
        {"image": MetaTensor(torch.zeros(1, *s)), "id": f"{i:03d}", "spacing": [0.1, 0.1],
         "landmarks": [[10.25, 20.5], [s[0] - 1.0, s[1] - 1.5], None]}
        for i, s in enumerate(sizes)
    ]
    pre = Compose([EnsureLandmarksd(), ResizeWithLandmarksd(spatial_size=(64, 80), keep_aspect=True)])
    batch = next(iter(DataLoader(Dataset(items, pre), batch_size=2, num_workers=0)))
    assert batch["image"].shape == (2, 1, 64, 80) and batch["landmarks"].shape == (2, 3, 2)
    assert model_to_source_affine(batch["image"]).shape == (2, 3, 3)  # batched mapping on the collated batch
    batched = landmarks_to_source(batch["landmarks"], batch["image"])
    post = LandmarksToSourced(keys=("landmarks",), ref_key="image", spacing_key="spacing")
    for i, item in enumerate(decollate_batch(batch)):
        out = post(item)
        expected = np.array([[10.25, 20.5], [sizes[i][0] - 1.0, sizes[i][1] - 1.5], [np.nan, np.nan]])
        np.testing.assert_allclose(out["landmarks"].numpy(), expected, atol=1e-3)
        np.testing.assert_allclose(batched[i].numpy(), expected, atol=1e-3)
        np.testing.assert_allclose(out["spacing"].numpy(), [0.1, 0.1], rtol=1e-5)
    assert LandmarksToSourceD is LandmarksToSourceDict is LandmarksToSourced


@pytest.mark.parametrize("image,match", [
    (torch.zeros(1, 8, 8, 8), r"2-D channel-first image \(C, dim0, dim1\), got shape \(1, 8, 8, 8\)"),
    (np.zeros((8, 8)), r"got shape \(8, 8\)"),
])
def test_non_2d_image_is_rejected(image, match):
    with pytest.raises(ValueError, match=match):
        ResizeWithLandmarks()(image)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="needs the image's spacing"):
        ResizeWithLandmarks(spatial_size=None, target_spacing=0.2)(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="finite and > 0"):
        ResizeWithLandmarks(target_spacing=-0.2)
    with pytest.raises(ValueError, match="spatial_size must be 2 positive integers"):
        ResizeWithLandmarks(spatial_size=(576, 0))
    with pytest.raises(ValueError, match="original_affine"):
        LandmarksToSource()(torch.zeros(1, 2), MetaTensor(torch.zeros(1, 8, 8)))


def test_real_isbi_image_round_trip_through_heatmaps(isbi_dir):
    """ISBI image at 1/4 model size: targets decoded and mapped back land on the annotation (< 0.02 px)."""
    with open(isbi_dir / "test1_senior.csv") as f:
        rows = list(csv.reader(f))
    row = rows[1]
    points = np.array(row[1:39], dtype=np.float64).reshape(19, 2)
    codec = GaussianHeatmapCodec(sigma=2.0)
    pre = Compose([
        LoadImaged("image", ensure_channel_first=True),
        EnsureLandmarksd(landmark_set="isbi2015"),
        ResizeWithLandmarksd(spatial_size=(MODEL_SPATIAL_SIZE[0] // 4, MODEL_SPATIAL_SIZE[1] // 4)),
        LandmarksToHeatmapd(codec=codec),
    ])
    d = pre({"image": str(isbi_dir / "images" / row[0]), "landmarks": points.tolist(), "spacing": [0.1, 0.1]})
    assert d["image"].shape == (3, 144, 184) and d["heatmap"].shape == (19, 144, 184)
    np.testing.assert_allclose(d["spacing"].numpy(), [0.1 * 1935 / 144, 0.1 * 2400 / 184], rtol=1e-6)
    d["pred"] = torch.logit(d["heatmap"].as_tensor().double().clamp(1e-12, 1 - 1e-12))
    post = Compose([HeatmapToLandmarksd(codec=codec, logits=True),
                    LandmarksToSourced(keys=("pred_landmarks",), spacing_key="spacing")])
    out = post(d)
    inside = (d["landmarks"] > 12).all(1) & (d["landmarks"] < torch.tensor([144 - 12, 184 - 12])).all(1)
    assert inside.sum() >= 15
    # 0.02 model px is ~0.27 source px at this scale
    error = np.linalg.norm(out["pred_landmarks"].numpy() - points, axis=1)
    assert error[inside.numpy()].max() < 0.02 * 1935 / 144
    np.testing.assert_allclose(out["spacing"].numpy(), [0.1, 0.1], rtol=1e-5)


def test_deprecated_pixel_spacing_is_the_target_spacing():
    image = MetaTensor(torch.zeros(1, 40, 20))
    with pytest.warns(FutureWarning, match="use target_spacing instead"):
        old = ResizeWithLandmarks(spatial_size=None, pixel_spacing=0.2)
    assert old.target_spacing == pytest.approx((0.2, 0.2))
    assert old(image, spacing=[0.1, 0.1])[0].shape == (1, 20, 10)
    with pytest.warns(FutureWarning, match="use target_spacing instead"):
        d = ResizeWithLandmarksd(spatial_size=None, pixel_spacing=0.4)({"image": image, "spacing": [0.1, 0.1]})
    assert d["image"].shape == (1, 10, 5)
