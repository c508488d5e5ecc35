import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import RandomizableTransform

from monai_ceph.transforms import LandmarksToSource, LandmarksToSourced, LoadLandmarksd, ResizeWithLandmarksd
from monai_ceph.transforms.spatial.field_of_view import (
    FieldOfView,
    FieldOfViewD,
    FieldOfViewd,
    FieldOfViewDict,
    PhysicalField,
    PhysicalFieldD,
    PhysicalFieldd,
    PhysicalFieldDict,
    RandFieldOfView,
    RandFieldOfViewD,
    RandFieldOfViewd,
    RandFieldOfViewDict,
    physical_pixel_spacing,
)

TYPES = [np.asarray, torch.as_tensor, MetaTensor]
SOURCE = (300, 240)
CENTRE = (131.37, 97.81)
SPACING = (0.1, 0.12)

# (box_start, box_end, spatial_size): crop, zoom-in with a crop, zoom-out past every edge, off-centre shift
BOXES = [
    ((40, 30), (260, 200), None),
    ((60, 20), (220, 180), (200, 200)),
    ((-50, -30), (340, 290), (150, 128)),
    ((-40, 25), (260, 265), (160, 128)),
]


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize("start,end,size", BOXES)
def test_blob_lands_on_the_carried_landmark(as_type, start, end, size, blob_image, intensity_centroid):
    image = as_type(blob_image(SOURCE, CENTRE, sigma=8.0).numpy())
    out, landmarks, spacing = FieldOfView(start, end, spatial_size=size)(image, torch.tensor([CENTRE]),
                                                                         torch.tensor(SPACING))
    expected_size = size or SOURCE
    assert type(out) is type(image) and tuple(out.shape) == (1, *expected_size)
    # box pixel edges [start - 0.5, end - 0.5) map onto the output's [-0.5, size - 0.5)
    scale = np.subtract(end, start) / np.asarray(expected_size)
    np.testing.assert_allclose(landmarks[0].numpy(), (np.asarray(CENTRE) - start + 0.5) / scale - 0.5, atol=1e-4)
    np.testing.assert_allclose(intensity_centroid(out), landmarks[0].numpy(), atol=0.05)
    np.testing.assert_allclose(spacing.numpy(), np.asarray(SPACING) * scale, rtol=1e-6)


@pytest.mark.parametrize("start,end,size", BOXES)
def test_source_mapping_is_exact_and_cut_off_landmarks_are_flagged_not_clamped(start, end, size):
    points = torch.tensor([CENTRE, (5.0, 5.0), (299.0, 239.0), (np.nan, np.nan)])
    data = {"image": MetaTensor(torch.zeros(1, *SOURCE)), "landmarks": points, "spacing": torch.tensor(SPACING)}
    d = FieldOfViewd("image", start, end, spatial_size=size)(data)
    back = LandmarksToSourced(keys="landmarks", ref_key="image")(d)["landmarks"]
    np.testing.assert_allclose(back.numpy(), points.numpy(), atol=1e-3)
    inside = [all(s - 0.5 <= p < e - 0.5 for p, s, e in zip(q, start, end)) for q in points.tolist()[:3]]
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [*map(float, inside), 0.0])
    # a cut-off point keeps exact coordinates outside the output (no clamping)
    for q, visible in zip(d["landmarks"][:3], inside):
        assert visible or not all(-0.5 <= v < n - 0.5 for v, n in zip(q.tolist(), d["image"].shape[1:]))


def test_cut_off_nan_marks_missing():
    points = torch.tensor([CENTRE, (5.0, 5.0)])
    _, landmarks, _ = FieldOfView((40, 30), (260, 200), cut_off="nan")(torch.zeros(1, *SOURCE), points)
    assert torch.isfinite(landmarks[0]).all() and torch.isnan(landmarks[1]).all()
    with pytest.raises(ValueError, match="cut_off"):
        FieldOfView((0, 0), (10, 10), cut_off="clamp")


def test_numpy_dictionary_input_stays_numpy_and_follows_the_pixels(blob_image, intensity_centroid):
    data = {"image": blob_image(SOURCE, CENTRE, sigma=8.0).numpy(), "landmarks": np.array([CENTRE])}
    d = FieldOfViewDict("image", (60, 20), (220, 180), spatial_size=(200, 200), spacing_key=None)(data)
    assert isinstance(d["image"], np.ndarray) and isinstance(d["landmarks"], np.ndarray)
    np.testing.assert_allclose(intensity_centroid(d["image"]), d["landmarks"][0], atol=0.05)
    assert FieldOfViewD is FieldOfViewDict is FieldOfViewd


def test_bad_boxes():
    with pytest.raises(ValueError, match="empty"):
        FieldOfView((10, 10), (10, 20))
    with pytest.raises(ValueError, match="misses the image"):
        FieldOfView((400, 0), (500, 100))(torch.zeros(1, *SOURCE))


@pytest.mark.parametrize("as_type", TYPES)
def test_random_field_of_view_moves_the_blob_exactly(as_type, blob_image, intensity_centroid):
    transform = RandFieldOfView(prob=1.0, zoom_range=(0.8, 1.2), shift_range=(-0.1, 0.1), aspect_range=(0.9, 1.1))
    assert isinstance(transform.set_random_state(5), RandomizableTransform)
    zooms = []
    for _ in range(5):
        image = as_type(blob_image(SOURCE, CENTRE, sigma=8.0).numpy())
        out, landmarks, spacing = transform(image, torch.tensor([CENTRE]), torch.tensor(SPACING))
        zooms.append(transform._zoom[0])
        assert type(out) is type(image) and tuple(out.shape) == (1, *SOURCE)
        np.testing.assert_allclose(intensity_centroid(out), landmarks[0].numpy(), atol=0.05)
        start, end = transform.box(SOURCE)
        np.testing.assert_allclose(spacing.numpy(), np.asarray(SPACING) * np.subtract(end, start) / SOURCE, rtol=1e-6)
    assert min(zooms) < 0.95 and max(zooms) > 1.05  # it does zoom both ways
    skipped = RandFieldOfView(prob=0.0)(torch.ones(1, *SOURCE), torch.tensor([CENTRE]))
    torch.testing.assert_close(skipped[0], torch.ones(1, *SOURCE))


def test_random_dictionary_is_seeded_and_invertible_by_landmarks_to_source(blob_image, intensity_centroid):
    points = torch.tensor([CENTRE, (1.0, 2.0)])

    def run(seed):
        data = {"image": MetaTensor(blob_image(SOURCE, CENTRE, sigma=8.0)), "landmarks": points.clone(),
                "spacing": torch.tensor(SPACING)}
        return RandFieldOfViewd("image", prob=1.0, zoom_range=(1.2, 1.2), shift_range=(0.1, 0.1)).set_random_state(
            seed)(data)

    a, b = run(3), run(3)
    torch.testing.assert_close(a["landmarks"], b["landmarks"])
    np.testing.assert_allclose(intensity_centroid(a["image"]), a["landmarks"][0].numpy(), atol=0.05)
    np.testing.assert_array_equal(a["landmark_mask"].numpy(), [1.0, 0.0])  # (1, 2) is outside the zoomed box
    back = LandmarksToSource()(a["landmarks"], a["image"])
    np.testing.assert_allclose(back.numpy(), points.numpy(), atol=1e-3)
    assert RandFieldOfViewD is RandFieldOfViewDict is RandFieldOfViewd


def test_physical_pixel_spacing_covers_the_field():
    assert physical_pixel_spacing((160, 200), (200.0, 250.0)) == pytest.approx(1.25)
    assert physical_pixel_spacing((576, 736), (200.0, 250.0)) == pytest.approx(200.0 / 576)  # the wider need wins
    field = PhysicalField(spatial_size=(576, 736), field_mm=(200.0, 250.0)).field_mm
    assert field[0] == pytest.approx(200.0, rel=1e-6) and field[1] >= 250.0


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize("source_spacing", [(0.1, 0.1), (0.127, 0.127), (0.15, 0.1)])
def test_physical_field_sees_the_same_millimetres_whatever_the_scanner(as_type, source_spacing, blob_image,
                                                                       intensity_centroid):
    """One physical point (30 mm, 25 mm from the first pixel) lands on the same model pixel at every spacing."""
    mm = np.array([30.0, 25.0])
    source = np.round(np.array([45.0, 40.0]) / source_spacing).astype(int)  # a 45 x 40 mm image
    centre = mm / source_spacing
    image = as_type(blob_image(tuple(source), tuple(centre), sigma=2.0 / source_spacing[0]).numpy())
    transform = PhysicalField(spatial_size=(100, 80), pixel_spacing=0.5)  # field 50 x 40 mm
    out, landmarks, spacing = transform(image, torch.tensor([centre]), torch.tensor(source_spacing))
    assert type(out) is type(image) and tuple(out.shape) == (1, 100, 80)
    np.testing.assert_allclose(spacing.numpy(), [0.5, 0.5], rtol=0.01)  # up to the rounding of the resized size
    # pixel i spans [i - 0.5, i + 0.5): the blob is mm + half a source pixel from the image's edge, and the image
    # (45 x 40 mm) is centred in the 50 x 40 mm field, 2.5 mm of padding before it along dim0
    from_edge = mm + 0.5 * np.asarray(source_spacing) + [2.5, 0.0]
    np.testing.assert_allclose(landmarks[0].numpy(), from_edge / 0.5 - 0.5, atol=0.1)  # size rounding only
    np.testing.assert_allclose(intensity_centroid(out), landmarks[0].numpy(), atol=0.05)
    back = LandmarksToSource()(landmarks, out) if isinstance(out, MetaTensor) else None
    if back is not None:
        np.testing.assert_allclose(back.numpy(), [centre], atol=1e-3)


def test_physical_field_dictionary_in_a_pipeline_maps_back_exactly():
    points = torch.tensor([[100.0, 90.5], [3.0, 4.0], [np.nan, np.nan]])
    data = {"image": MetaTensor(torch.zeros(1, 400, 300)), "landmarks": points.clone(), "spacing": torch.tensor(
        [0.1, 0.1])}
    d = PhysicalFieldd("image", spatial_size=(64, 64), pixel_spacing=0.5)(data)  # field 32 x 32 mm of 40 x 30 mm
    assert tuple(d["image"].shape) == (1, 64, 64)
    np.testing.assert_allclose(d["spacing"].numpy(), [0.5, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [1.0, 0.0, 0.0])  # (3, 4) is cropped off along dim0
    back = LandmarksToSourced(keys="landmarks", ref_key="image", spacing_key="spacing")(d)
    np.testing.assert_allclose(back["landmarks"].numpy(), points.numpy(), atol=1e-3)
    np.testing.assert_allclose(back["spacing"].numpy(), [0.1, 0.1], rtol=1e-5)
    assert PhysicalFieldD is PhysicalFieldDict is PhysicalFieldd


@pytest.mark.parametrize("spacing,match", [(None, "has no pixel spacing"), ([0.1, float("nan")], "finite"),
                                           ([0.0, 0.1], "finite"), ("0.1", "not numeric")])
def test_physical_field_without_a_usable_spacing_says_how_to_fix_it(spacing, match):
    image = MetaTensor(torch.zeros(1, 40, 30), meta={"filename_or_obj": "site_b/007.png"})
    data = {"image": image, "landmarks": torch.zeros(19, 2)}
    if spacing is not None:
        data["spacing"] = spacing
    with pytest.raises(ValueError, match=match) as err:
        PhysicalFieldd("image", spatial_size=(64, 64), pixel_spacing=0.5)(data)
    message = str(err.value)
    assert "site_b/007.png" in message and "pass it" in message and "fixed-size" in message


def test_physical_field_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        PhysicalField(spatial_size=(64, 64))
    with pytest.raises(ValueError, match="exactly one"):
        PhysicalField(spatial_size=(64, 64), pixel_spacing=0.5, field_mm=30.0)
    with pytest.raises(ValueError, match="spacing_key"):
        PhysicalFieldd("image", spacing_key=None, pixel_spacing=0.5)


@pytest.mark.isbi
def test_physical_field_on_real_isbi_images(isbi_dir):
    """Two real radiographs through the bundle's loading, at two scanner spacings, land on the same model pixels."""
    from monai.transforms import Compose, LoadImaged

    from monai_ceph.data import build_datalist
    from monai_ceph.transforms import ResizeWithLandmarks, ToGreyscaled

    items = sorted(build_datalist(isbi_dir, fmt="isbi2015", ground_truth="average")["training"],
                   key=lambda i: i["id"])[:2]
    load = Compose([LoadImaged("image", image_only=True, ensure_channel_first=True), ToGreyscaled("image"),
                    LoadLandmarksd("landmarks", landmark_set="isbi2015")])
    physical = PhysicalFieldd("image", spatial_size=(160, 200), field_mm=(200.0, 250.0))
    for item in items:
        d = load(dict(item))
        d["spacing"] = torch.tensor(item["spacing"])
        a = physical(dict(d))
        # the same radiograph as a 0.127 mm/pixel scanner would store it
        img, lm, sp = ResizeWithLandmarks(spatial_size=None, target_spacing=0.127)(d["image"], d["landmarks"],
                                                                                  d["spacing"])
        b = physical({"image": img, "landmarks": lm, "spacing": sp})
        assert tuple(a["image"].shape) == tuple(b["image"].shape) == (1, 160, 200)
        np.testing.assert_allclose(a["landmarks"].numpy(), b["landmarks"].numpy(), atol=0.1)
        assert a["landmark_mask"].sum() == 19
        back = LandmarksToSourced(keys="landmarks", ref_key="image")(a)["landmarks"]
        np.testing.assert_allclose(back.numpy(), d["landmarks"].numpy(), atol=1e-3)
    assert ResizeWithLandmarksd  # the fixed-size input stays available
