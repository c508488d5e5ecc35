import io

import numpy as np
import pytest
import torch
from PIL import Image

from monai.data import MetaTensor
from monai.transforms import RandomizableTransform

from monai_ceph.transforms.intensity.scanner import (
    CollimationBorder,
    CollimationBorderD,
    CollimationBorderd,
    CollimationBorderDict,
    JPEGCompression,
    JPEGCompressionD,
    JPEGCompressiond,
    JPEGCompressionDict,
    RandCollimationBorder,
    RandCollimationBorderD,
    RandCollimationBorderd,
    RandCollimationBorderDict,
    RandJPEGCompression,
    RandJPEGCompressiond,
)

TYPES = [np.asarray, torch.as_tensor, MetaTensor]


def _radiograph(size=(64, 48), seed=0):
    """A smooth image with edges in [0, 1]: what JPEG keeps well at high quality and blocks at low quality."""
    g0, g1 = np.meshgrid(np.linspace(0, 1, size[0]), np.linspace(0, 1, size[1]), indexing="ij")
    img = 0.5 + 0.3 * np.sin(6 * g0) * np.cos(4 * g1) + 0.15 * (g0 > 0.5)
    img += 0.02 * np.random.default_rng(seed).standard_normal(size)
    return np.clip(img, 0, 1)[None].astype(np.float32)


@pytest.mark.parametrize("as_type", TYPES)
def test_jpeg_matches_pillow_round_trip_and_keeps_type(as_type):
    img = _radiograph()
    out = JPEGCompression(quality=40)(as_type(img))
    assert type(out) is type(as_type(img)) and out.dtype == as_type(img).dtype and out.shape == img.shape
    # reference: the same 8-bit levels through Pillow by hand
    low, high = img.min(), img.max()
    levels = np.rint((img[0] - low) / (high - low) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="JPEG", quality=40, subsampling=0)
    expected = np.asarray(Image.open(buffer), dtype=np.float64) / 255 * (high - low) + low
    np.testing.assert_allclose(np.asarray(out)[0], expected, atol=1e-6)


def test_jpeg_error_grows_as_quality_falls_and_meta_is_kept():
    img = MetaTensor(torch.as_tensor(_radiograph()), meta={"filename_or_obj": "a.png"})
    errors = [float((JPEGCompression(q)(img) - img).abs().mean()) for q in (95, 60, 20, 5)]
    assert errors == sorted(errors) and errors[0] < 0.01 < errors[-1]
    assert JPEGCompression(50)(img).meta["filename_or_obj"] == "a.png"
    constant = torch.full((1, 8, 8), 0.3)
    torch.testing.assert_close(JPEGCompression(10)(constant), constant)
    with pytest.raises(ValueError, match="quality"):
        JPEGCompression(100)


def test_rand_jpeg_draws_qualities_in_range_and_dictionary_applies_one_per_sample():
    t = RandJPEGCompression(prob=1.0, quality_range=(20, 25)).set_random_state(0)
    assert isinstance(t, RandomizableTransform)
    drawn = set()
    for _ in range(20):
        t.randomize()
        drawn.add(t.quality)
    assert drawn <= set(range(20, 26)) and len(drawn) > 2
    img = torch.as_tensor(_radiograph())
    d = RandJPEGCompressiond(keys=("a", "b"), prob=1.0, quality_range=(30, 30)).set_random_state(1)(
        {"a": img, "b": img.clone()})
    torch.testing.assert_close(d["a"], JPEGCompression(30)(img))
    torch.testing.assert_close(d["a"], d["b"])
    torch.testing.assert_close(RandJPEGCompression(prob=0.0)(img), img)
    d = JPEGCompressiond("a", quality=30)({"a": img})
    torch.testing.assert_close(d["a"], JPEGCompression(30)(img))
    assert JPEGCompressionD is JPEGCompressionDict is JPEGCompressiond


@pytest.mark.parametrize("as_type", TYPES)
def test_collimation_border_fills_exactly_the_bands(as_type):
    img = _radiograph((20, 16))
    out = CollimationBorder((2, 3, 1, 0), value=0.0)(as_type(img))
    assert type(out) is type(as_type(img))
    o = np.asarray(out)
    assert (o[0, :2] == 0).all() and (o[0, -3:] == 0).all() and (o[0, :, :1] == 0).all()
    np.testing.assert_array_equal(o[0, 2:-3, 1:], img[0, 2:-3, 1:])  # the rest untouched
    white = np.asarray(CollimationBorder((0, 0, 0, 4), value=None)(as_type(img)))
    np.testing.assert_array_equal(white[0, :, -4:], np.full((20, 4), img.max()))  # inverted: the image's white
    assert np.asarray(img).min() > 0  # the input was not modified in place
    with pytest.raises(ValueError, match="widths"):
        CollimationBorder((1, 2, 3))


def test_collimation_dictionary_flags_covered_landmarks():
    landmarks = torch.tensor([[1.0, 8.0], [10.0, 8.0], [10.0, 15.2], [np.nan, np.nan]])
    data = {"image": MetaTensor(torch.ones(1, 20, 16)), "landmarks": landmarks}
    d = CollimationBorderd("image", widths=(2, 0, 0, 1))(data)
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [0.0, 1.0, 0.0, 0.0])
    torch.testing.assert_close(d["landmarks"], landmarks, equal_nan=True)  # no pixel moved: landmarks unchanged
    d["landmark_mask"] = torch.tensor([1.0, 0.0, 1.0, 0.0])  # an existing mask is combined, not replaced
    d = CollimationBorderd("image", widths=(2, 0, 0, 0))(d)
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [0.0, 0.0, 1.0, 0.0])
    assert CollimationBorderD is CollimationBorderDict is CollimationBorderd


def test_rand_collimation_border_is_seeded_black_or_white_and_bounded():
    img = torch.full((1, 100, 80), 0.5)
    img[0, 50, 40] = 0.9
    t = RandCollimationBorder(prob=1.0, max_fraction=0.2, edge_prob=1.0, inverted_prob=0.5).set_random_state(0)
    fills = set()
    for _ in range(12):
        out = t(img)
        border = t.border(img.shape[1:])
        assert max(border.widths[:2]) <= 20 and max(border.widths[2:]) <= 16
        covered = border.covered(img.shape[1:])
        fills |= set(torch.unique(out[0][covered]).tolist())
        torch.testing.assert_close(out[0][~covered], img[0][~covered])
    assert fills == {0.0, float(torch.tensor(0.9))}  # black and inverted (the image's maximum, float32)
    d = {"image": img, "landmarks": torch.tensor([[50.0, 40.0]])}
    a = RandCollimationBorderd("image", prob=1.0, edge_prob=1.0).set_random_state(4)(d)
    b = RandCollimationBorderd("image", prob=1.0, edge_prob=1.0).set_random_state(4)(d)
    torch.testing.assert_close(a["image"], b["image"])
    np.testing.assert_array_equal(a["landmark_mask"].numpy(), [1.0])
    assert RandCollimationBorderD is RandCollimationBorderDict is RandCollimationBorderd
