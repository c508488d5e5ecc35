import json

import numpy as np
import pytest

from monai_ceph.data import ISBI2015_TEMPLATE, DATALIST_KEYS, make_phantom, write_phantom_dataset


def test_deterministic_and_seeded():
    a_img, a_pts = make_phantom(seed=7)
    b_img, b_pts = make_phantom(seed=7)
    c_img, c_pts = make_phantom(seed=8)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_pts, b_pts)
    assert np.abs(a_pts - c_pts).max() > 1 and np.abs(a_img - c_img).mean() > 0.01


@pytest.mark.parametrize("size", [(193, 240), (64, 80), (240, 193)])
def test_shape_range_and_landmarks_near_template(size):
    image, points = make_phantom(size, seed=1)
    assert image.shape == (1, *size) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.05
    assert points.shape == (19, 2) and points.dtype == np.float32
    assert np.all(points >= 0) and np.all(points <= np.array(size) - 1)
    # a similarity of at most 5 deg / 5 % / 3 % shift plus 1 % jitter keeps every point within ~10 % of the template
    assert np.abs(points / np.array(size) - ISBI2015_TEMPLATE).max() < 0.1
    np.testing.assert_array_equal(points, np.round(points.astype(np.float64), 3).astype(np.float32))


def test_landmarks_are_visible():
    """Every landmark sits on a bright blob: brighter than its surroundings 4 sigma away."""
    image, points = make_phantom(seed=2, noise_std=0.0)
    img = image[0]
    for k, (x, y) in enumerate(points):
        centre = img[int(round(x)), int(round(y))]
        ring = [img[int(round(x + dx)), int(round(y + dy))] for dx, dy in ((6, 0), (-6, 0), (0, 6), (0, -6))]
        assert centre > np.mean(ring) + 0.15, k


@pytest.mark.parametrize("xy", [(20.3, 30.7), (41.0, 12.25), (33.875, 50.5)])
def test_blob_centred_exactly_on_the_landmark(xy):
    """The blob alone (image minus the same phantom without blobs) has its centroid at the given (x, y)."""
    landmarks = np.array([xy])
    kwargs = dict(spatial_size=(64, 72), landmarks=landmarks, seed=3, noise_std=0.0, blob_sigma=1.5)
    blob = make_phantom(blob_amplitude=0.3, **kwargs)[0][0].astype(np.float64)
    blob -= make_phantom(blob_amplitude=0.0, **kwargs)[0][0]
    xs, ys = np.meshgrid(np.arange(64), np.arange(72), indexing="ij")
    centroid = [(blob * xs).sum() / blob.sum(), (blob * ys).sum() / blob.sum()]
    np.testing.assert_allclose(centroid, xy, atol=1e-3)  # dim0 is x, dim1 is y
    peak = np.unravel_index(np.argmax(blob), blob.shape)
    assert np.all(np.abs(np.array(peak) - xy) <= 0.5)


def test_given_landmarks_used_as_is():
    landmarks = [[5.5, 6.25], [10, 20]]
    _, points = make_phantom((32, 40), landmarks=landmarks)
    np.testing.assert_array_equal(points, np.float32(landmarks))
    with pytest.raises(ValueError, match=r"finite \(N, 2\)"):
        make_phantom((32, 40), landmarks=[[1, 2, 3]])
    with pytest.raises(ValueError, match="spatial_size must be two integers"):
        make_phantom((32,))


@pytest.mark.parametrize("bit_depth", [16, 8])
def test_dataset_loads_with_monai_in_landmark_order(tmp_path, bit_depth):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImage

    path = write_phantom_dataset(tmp_path / "ph", num_images=5, spatial_size=(48, 60), seed=4, bit_depth=bit_depth)
    assert path == tmp_path / "ph" / "datalist.json"
    raw = json.loads(path.read_text())
    assert [len(raw[k]) for k in DATALIST_KEYS] == [4, 1, 0]  # 0.8/0.1/0.1 of 5, largest remainder
    assert raw["landmark_set"] == "isbi2015" and raw["split"] == {"fractions": [0.8, 0.1, 0.1], "seed": 4}
    item = raw["training"][0]
    assert item["image"].startswith("images/phantom_") and item["spacing"] == [4.0, 4.0]  # 0.1 * 2400 / 60
    loaded = load_decathlon_datalist(str(path), data_list_key="training")
    image = LoadImage(image_only=True, ensure_channel_first=True)(loaded[0]["image"])
    assert tuple(image.shape) == (1, 48, 60)
    # the PNG holds exactly the phantom of that index, x along dim0
    i = int(item["id"].split("_")[1])
    seed = int(np.random.SeedSequence([4, i]).generate_state(1)[0])
    expected, points = make_phantom((48, 60), seed=seed)
    top = 65535 if bit_depth == 16 else 255
    np.testing.assert_array_equal(np.asarray(image), np.round(expected * top))
    np.testing.assert_allclose(item["landmarks"], points, atol=1e-4)


def test_dataset_is_reproducible(tmp_path):
    a = write_phantom_dataset(tmp_path / "a", num_images=3, spatial_size=(40, 50), seed=1)
    b = write_phantom_dataset(tmp_path / "b", num_images=3, spatial_size=(40, 50), seed=1)
    assert a.read_text() == b.read_text()
    for name in ("phantom_0000.png", "phantom_0002.png"):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()
    with pytest.raises(ValueError, match="bit_depth"):
        write_phantom_dataset(tmp_path / "c", 2, bit_depth=12)
