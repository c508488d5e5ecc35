"""NLMDenoise / NLMDenoised: agreement with skimage's fast-mode non-local means, types, metadata, errors."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, Resize

from monai_ceph.transforms.intensity import CLAHE, NLMDenoise, NLMDenoiseD, NLMDenoised, NLMDenoiseDict
from monai_ceph.transforms.intensity._nlm import fast_exp
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE

restoration = pytest.importorskip("skimage.restoration")

MAX_DIFF, MEAN_DIFF = 1e-3, 1e-6  # stated in NLMDenoise's docstring (float32, images in [0, 1])
TYPES = [np.asarray, torch.as_tensor]


def _assert_agrees(out, ref, what=""):
    """The stated agreement, and that all but a few pixels (cut-off flips) agree to 1e-5."""
    diff = np.abs(np.asarray(out, dtype=np.float64) - ref)
    assert diff.max() <= MAX_DIFF, f"{what}: max |diff| {diff.max():.2e}"
    assert diff.mean() <= MEAN_DIFF, f"{what}: mean |diff| {diff.mean():.2e}"
    assert np.count_nonzero(diff > 1e-5) <= 3, f"{what}: {np.count_nonzero(diff > 1e-5)} pixels off by > 1e-5"


def _reference(channel: np.ndarray, patch_size=5, patch_distance=3, h=0.02, sigma=0.0) -> np.ndarray:
    return restoration.denoise_nl_means(
        channel, patch_size, patch_distance, h, fast_mode=True, sigma=sigma, preserve_range=True
    )


def _noisy_squares(shape=(36, 44), noise=0.1, seed=0):
    """Piecewise-constant image in [0.2, 0.8] and the same plus Gaussian noise (float32)."""
    clean = np.full(shape, 0.2)
    clean[8:-8, 10:-12] = 0.8
    clean[14:20, 4:30] = 0.5
    rng = np.random.default_rng(seed)
    return clean.astype(np.float32), (clean + noise * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"patch_size": 7, "patch_distance": 11, "h": 0.1},  # scikit-image's defaults
        {"patch_size": 6, "patch_distance": 4, "h": 0.15},  # even patch size: made odd, as scikit-image
        {"patch_size": 5, "patch_distance": 2, "h": 0.08, "sigma": 0.1},
        {"patch_size": 1, "patch_distance": 2, "h": 0.1},
    ],
)
def test_matches_skimage_synthetic(as_type, params):
    _, noisy = _noisy_squares()
    out = NLMDenoise(**params)(as_type(noisy[None]))
    assert type(out) is type(as_type(noisy)) and out.dtype in (np.float32, torch.float32)
    _assert_agrees(np.asarray(out)[0], _reference(noisy, **params), str(params))


@pytest.mark.parametrize("as_type", TYPES)
def test_matches_skimage_window_larger_than_image(as_type):
    """Padding reflects more than once when the search window exceeds the image (numpy's ``reflect``)."""
    noisy = _noisy_squares()[1][10:22, 14:24]
    out = NLMDenoise(patch_size=3, patch_distance=15, h=0.2)(as_type(noisy[None]))
    _assert_agrees(np.asarray(out)[0], _reference(noisy, 3, 15, 0.2))


def test_float64_matches_skimage_to_rounding():
    _, noisy = _noisy_squares()
    noisy = noisy.astype(np.float64)
    for params in ({}, {"patch_size": 7, "patch_distance": 6, "h": 0.12, "sigma": 0.05}):
        out = NLMDenoise(**params)(torch.from_numpy(noisy[None]))
        assert out.dtype == torch.float64
        np.testing.assert_allclose(out[0].numpy(), _reference(noisy, **params), rtol=0, atol=1e-12)


def test_fast_exp_is_skimages_approximation():
    x = -torch.linspace(0, 5, 1001, dtype=torch.float64)
    approx = fast_exp(x)
    rel = (approx / torch.exp(x) - 1).abs()
    assert 0.01 < rel.max() < 0.07  # an approximation, not exp: within a few % (Schraudolph 1999)
    # float32 builds the same bits with one float32 multiply-add: within 4e-6 of the float64 (skimage) value
    torch.testing.assert_close(fast_exp(x.float()).double(), approx, rtol=5e-6, atol=0)
    assert float(fast_exp(torch.zeros(()))) == pytest.approx(0.97101, abs=1e-5)


@pytest.mark.isbi
def test_matches_skimage_on_isbi(isbi_dir):
    """CLAHE-equalised real radiographs at the model input size (two whole, one crop), default parameters."""
    load = LoadImage(image_only=True, ensure_channel_first=True)
    resize = Resize(MODEL_SPATIAL_SIZE, mode="area")
    for name, window in (("001.jpg", np.s_[:]), ("301.jpg", np.s_[:]), ("152.jpg", np.s_[:, 250:400, 300:420])):
        img = CLAHE()(resize(load(isbi_dir / "images" / name)[:1]))[window]
        out = NLMDenoise()(img)
        assert isinstance(out, MetaTensor) and out.shape == img.shape
        _assert_agrees(out[0].numpy(), _reference(img[0].numpy()), name)
        assert np.abs(out - img).mean() > 1e-3  # it did smooth


@pytest.mark.parametrize("as_type", TYPES)
def test_denoises_and_keeps_range(as_type):
    clean, noisy = _noisy_squares(shape=(48, 56), noise=0.08, seed=3)
    out = np.asarray(NLMDenoise(patch_size=5, patch_distance=4, h=0.08)(as_type(noisy[None])))[0]
    assert np.mean((out - clean) ** 2) < 0.3 * np.mean((noisy - clean) ** 2)
    assert noisy.min() <= out.min() and out.max() <= noisy.max()  # weighted means of input pixels


@pytest.mark.parametrize("as_type", TYPES)
def test_channels_independent_and_identity(as_type):
    _, a = _noisy_squares(seed=1)
    _, b = _noisy_squares(seed=2)
    both = np.asarray(NLMDenoise(h=0.1)(as_type(np.stack([a, 0.5 * b]))))
    np.testing.assert_array_equal(both[0], np.asarray(NLMDenoise(h=0.1)(as_type(a[None])))[0])
    np.testing.assert_array_equal(both[1], np.asarray(NLMDenoise(h=0.1)(as_type(0.5 * b[None])))[0])
    np.testing.assert_allclose(np.asarray(NLMDenoise(patch_distance=0)(as_type(a[None])))[0], a, rtol=1e-6)


@pytest.mark.parametrize("as_type", TYPES)
@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
def test_constant_image_stays_constant(as_type, value):
    out = NLMDenoise()(as_type(np.full((2, 17, 23), value, dtype=np.float32)))
    np.testing.assert_allclose(np.asarray(out), value, rtol=1e-6, atol=0)


def test_integer_input_gives_float_in_its_units():
    img = (np.random.default_rng(0).random((1, 20, 24)) * 255).astype(np.uint8)
    out = NLMDenoise(h=25.0)(img)
    assert out.dtype == np.float32
    _assert_agrees(out[0] / 255, _reference(img[0].astype(np.float32), h=25.0) / 255)


def test_metadata_and_device_kept():
    _, noisy = _noisy_squares()
    img = MetaTensor(torch.from_numpy(noisy[None]), affine=torch.diag(torch.tensor([0.3, 0.3, 1.0, 1.0])))
    img.meta["filename_or_obj"] = "ceph.png"
    out = NLMDenoise()(img)
    assert isinstance(out, MetaTensor) and out.device == img.device
    assert out.meta["filename_or_obj"] == "ceph.png"
    torch.testing.assert_close(out.affine, img.affine)
    if torch.cuda.is_available():
        gpu = NLMDenoise()(img.cuda())
        assert gpu.device.type == "cuda"
        _assert_agrees(gpu.cpu()[0].numpy(), out[0].numpy(), "cuda vs cpu")


@pytest.mark.parametrize("as_type", TYPES)
def test_dict_equals_array(as_type):
    _, noisy = _noisy_squares()
    img = as_type(noisy[None])
    data = {"image": img, "label": as_type(np.ones((1, 3, 3)))}
    for dict_cls in (NLMDenoised, NLMDenoiseD, NLMDenoiseDict):
        out = dict_cls(keys="image", patch_size=3, patch_distance=2, h=0.1)(data)
        np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(NLMDenoise(3, 2, 0.1)(img)))
        assert out["label"] is data["label"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": 2.5}, "patch_size"),
        ({"patch_distance": -1}, "patch_distance"),
        ({"h": 0}, "h must"),
        ({"h": -0.1}, "h must"),
        ({"h": float("inf")}, "h must"),
        ({"sigma": -0.01}, "sigma"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NLMDenoise(**kwargs)


@pytest.mark.parametrize("shape", [(30, 40), (1, 8, 30, 40)])
def test_bad_input(shape):
    with pytest.raises(ValueError, match=r"NLMDenoise: expected a non-empty channel-first 2-D image"):
        NLMDenoise()(np.zeros(shape, dtype=np.float32))
    with pytest.raises(ValueError, match=r"key 'image': NLMDenoise: expected"):
        NLMDenoised("image")({"image": torch.zeros(shape)})
