"""CLAHE / CLAHEd: agreement with skimage.exposure.equalize_adapthist, types, metadata, errors."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, Resize

from monai_ceph.transforms.intensity import CLAHE, CLAHED, CLAHEd, CLAHEDict
from monai_ceph.transforms.intensity._clahe import _clip_histograms
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE

exposure = pytest.importorskip("skimage.exposure")
_adapthist = pytest.importorskip("skimage.exposure._adapthist")

TOLERANCE = 1e-5  # stated in CLAHE's docstring
TYPES = [np.asarray, torch.as_tensor]


def _reference(channel: np.ndarray, **kwargs) -> np.ndarray:
    """scikit-image on one channel, rescaled to [0, 1] the way CLAHE's docstring states (integers as they are)."""
    if channel.dtype.kind == "u":
        return exposure.equalize_adapthist(channel, **kwargs)
    x = channel.astype(np.float64)
    return exposure.equalize_adapthist((x - x.min()) / (x.max() - x.min()), **kwargs)


def _synthetic(shape=(45, 61), seed=0) -> np.ndarray:
    """Smooth gradient, a bright disc and noise: local contrast that CLAHE changes a lot."""
    rng = np.random.default_rng(seed)
    g0, g1 = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    disc = ((g0 - 0.4) ** 2 + (g1 - 0.6) ** 2 < 0.05).astype(np.float64)
    return (200 * g0 * g1 + 40 * disc + 8 * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"kernel_size": 8, "clip_limit": 0.03}, {"kernel_size": (5, 13), "clip_limit": 0.005, "nbins": 64}],
)
def test_matches_skimage_synthetic(as_type, kwargs):
    img = _synthetic()[None]
    out = CLAHE(**kwargs)(as_type(img))
    assert type(out) is type(as_type(img))
    ref = _reference(img[0], **kwargs)
    np.testing.assert_allclose(np.asarray(out)[0], ref, rtol=0, atol=TOLERANCE)
    assert np.abs(np.asarray(out)[0] - np.asarray(img)[0] / img.max()).max() > 0.1  # it did equalise


@pytest.mark.parametrize("as_type", TYPES)
def test_matches_skimage_uint8(as_type):
    img = (np.random.default_rng(1).random((1, 40, 52)) ** 3 * 255).astype(np.uint8)
    out = CLAHE(kernel_size=10, clip_limit=0.02)(as_type(img))
    assert out.dtype in (np.float32, torch.float32)
    np.testing.assert_allclose(np.asarray(out)[0], _reference(img[0], kernel_size=10, clip_limit=0.02), atol=TOLERANCE)


@pytest.mark.parametrize("clip", [2, 5, 40, 300])
def test_clip_redistribution_matches_skimage(clip):
    """The vectorised clip-and-redistribute loop gives scikit-image's histograms exactly, tile by tile."""
    rng = np.random.default_rng(clip)
    hist = np.concatenate(
        [rng.poisson(rng.uniform(0.5, 60), size=(6, 64)), rng.zipf(1.5, size=(6, 64)).clip(max=5000)]
    ).astype(np.int64)
    expected = np.stack([_adapthist.clip_histogram(h.copy(), clip) for h in hist])
    np.testing.assert_array_equal(_clip_histograms(torch.from_numpy(hist), clip).numpy(), expected)


@pytest.mark.isbi
def test_matches_skimage_on_isbi(isbi_dir):
    """2 real radiographs at the model input size (576, 736), default parameters."""
    load = LoadImage(image_only=True, ensure_channel_first=True)
    resize = Resize(MODEL_SPATIAL_SIZE, mode="area")
    for name in ("001.jpg", "152.jpg"):
        img = resize(load(isbi_dir / "images" / name)[:1])
        out = CLAHE()(img)
        assert isinstance(out, MetaTensor) and out.shape == (1, *MODEL_SPATIAL_SIZE)
        ref = _reference(img[0].numpy())
        np.testing.assert_allclose(out[0].numpy(), ref, rtol=0, atol=TOLERANCE, err_msg=name)
        crop = img[:, 300:420, 200:330]  # a crop: other size, other default kernel
        np.testing.assert_allclose(CLAHE()(crop)[0].numpy(), _reference(crop[0].numpy()), atol=TOLERANCE)


@pytest.mark.parametrize("as_type", TYPES)
def test_range_and_channels_independent(as_type):
    base = _synthetic()
    img = np.stack([base, 3.5 * base - 20.0, _synthetic(seed=5)])  # channel 1: affine copy of channel 0
    out = np.asarray(CLAHE(kernel_size=9)(as_type(img)))
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out.min(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(out.max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(out[1], out[0], atol=TOLERANCE)  # min-max rescaled per channel first
    single = np.asarray(CLAHE(kernel_size=9)(as_type(img[2:])))
    np.testing.assert_array_equal(out[2], single[0])


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize("value", [0.0, 0.7, 255.0])
def test_constant_image_stays_constant(as_type, value):
    out = CLAHE()(as_type(np.full((2, 20, 30), value, dtype=np.float32)))
    np.testing.assert_array_equal(np.asarray(out), 0.0)


def test_metadata_and_device_kept():
    img = MetaTensor(torch.from_numpy(_synthetic()[None]), affine=torch.diag(torch.tensor([0.3, 0.3, 1.0, 1.0])))
    img.meta["filename_or_obj"] = "ceph.png"
    out = CLAHE()(img)
    assert isinstance(out, MetaTensor) and out.device == img.device
    assert out.meta["filename_or_obj"] == "ceph.png"
    torch.testing.assert_close(out.affine, img.affine)
    if torch.cuda.is_available():
        gpu = CLAHE()(img.cuda())
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu().as_tensor(), out.as_tensor(), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("as_type", TYPES)
def test_dict_equals_array(as_type):
    img = as_type(_synthetic()[None])
    data = {"image": img, "other": as_type(np.ones((1, 3, 3)))}
    for dict_cls in (CLAHEd, CLAHED, CLAHEDict):
        out = dict_cls(keys="image", kernel_size=7, clip_limit=0.02)(data)
        np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(CLAHE(7, 0.02)(img)))
        assert out["other"] is data["other"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (8, -1)}, "kernel_size"),
        ({"kernel_size": (8, 8, 8)}, "kernel_size"),
        ({"kernel_size": 2.5}, "kernel_size"),
        ({"clip_limit": 0}, "clip_limit"),
        ({"clip_limit": -0.01}, "clip_limit"),
        ({"clip_limit": float("nan")}, "clip_limit"),
        ({"nbins": 0}, "nbins"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CLAHE(**kwargs)


@pytest.mark.parametrize("shape", [(30, 40), (1, 8, 30, 40), (1, 0, 5)])
def test_bad_input(shape):
    with pytest.raises(ValueError, match=r"CLAHE: expected a non-empty channel-first 2-D image"):
        CLAHE()(np.zeros(shape, dtype=np.float32))
    with pytest.raises(ValueError, match=r"key 'image': CLAHE: expected"):
        CLAHEd("image")({"image": torch.zeros(shape)})
