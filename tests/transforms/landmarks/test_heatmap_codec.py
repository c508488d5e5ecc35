import math

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import GenerateHeatmap

from monai_ceph.transforms import (
    GaussianHeatmapCodec,
    HeatmapToLandmarks,
    HeatmapToLandmarksD,
    HeatmapToLandmarksd,
    HeatmapToLandmarksDict,
    LandmarksToHeatmap,
    LandmarksToHeatmapD,
    LandmarksToHeatmapd,
    LandmarksToHeatmapDict,
)

TYPES = [np.asarray, torch.as_tensor]
SIZE = (96, 112)
PAPER_PEAK = 5.0 / (2.0 * math.sqrt(2.0 * math.pi))  # phi / (sigma sqrt(2 pi)) = 0.99736


def random_points(n, size, margin, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor([margin, margin]), torch.tensor([size[0] - 1 - margin, size[1] - 1 - margin])
    return (lo + torch.rand(n, 2, generator=g, dtype=torch.float64) * (hi - lo)).to(torch.float32)


def test_rendered_values_match_the_formula():
    codec = GaussianHeatmapCodec()  # sigma 2 px, phi 5, the paper's target
    heatmap = codec.encode(torch.tensor([[40.0, 50.0], [10.25, 20.75]]), SIZE)
    assert heatmap.shape == (2, *SIZE) and heatmap.dtype == torch.float32
    assert codec.amplitude == pytest.approx(PAPER_PEAK)
    assert heatmap[0, 40, 50].item() == pytest.approx(PAPER_PEAK, rel=1e-6)
    # d^2 = 3^2 + 4^2 = 25 at (43, 54): A exp(-25 / 8)
    assert heatmap[0, 43, 54].item() == pytest.approx(PAPER_PEAK * math.exp(-25 / 8), rel=1e-5)
    # sub-pixel centre: at (10, 21) d^2 = 0.25^2 + 0.25^2
    assert heatmap[1, 10, 21].item() == pytest.approx(PAPER_PEAK * math.exp(-0.125 / 8), rel=1e-5)
    unit = GaussianHeatmapCodec(normalize=True).encode(torch.tensor([[40.0, 50.0]]), SIZE)
    assert unit.max().item() == pytest.approx(1.0)


def test_centre_is_sub_pixel_unlike_monai_generate_heatmap(intensity_centroid):
    point = torch.tensor([[30.3, 41.7]])
    ours = GaussianHeatmapCodec(sigma=3.0).encode(point, SIZE)[0]
    np.testing.assert_allclose(intensity_centroid(ours[None]), [30.3, 41.7], atol=1e-3)
    monai = GenerateHeatmap(sigma=3.0, spatial_shape=SIZE)(point)[0]
    np.testing.assert_allclose(intensity_centroid(monai[None]), [30.0, 42.0], atol=1e-3)  # rounded to whole pixels


@pytest.mark.parametrize("method,tolerance", [("dark", 0.02), ("centroid", 0.02)])
def test_round_trip_sub_pixel_decoders(method, tolerance):
    points = random_points(200, SIZE, margin=12)
    codec = GaussianHeatmapCodec(sigma=2.0, decode_method=method)
    decoded, confidence = codec.decode(codec.encode(points, SIZE))
    error = torch.linalg.vector_norm(decoded - points, dim=-1)
    assert error.max().item() <= tolerance
    assert confidence.min().item() >= PAPER_PEAK * math.exp(-0.25 / 4) - 1e-6  # at most (0.5, 0.5) off a centre
    assert confidence.max().item() <= PAPER_PEAK + 1e-6


def test_argmax_alone_is_off_by_up_to_half_a_pixel_per_dim():
    points = random_points(200, SIZE, margin=12)
    codec = GaussianHeatmapCodec(decode_method="argmax")
    decoded, _ = codec.decode(codec.encode(points, SIZE))
    np.testing.assert_array_equal(decoded.numpy(), torch.round(points).numpy())
    error = torch.linalg.vector_norm(decoded - points, dim=-1)
    assert 0.3 < error.max().item() <= math.sqrt(0.5) + 1e-6


@pytest.mark.parametrize("blur", [False, True])
def test_decoding_logits_uses_log_sigmoid(blur):
    """A BCE-trained network predicts sigmoid(logits) ~ heatmap: decoding logits must match decoding the heatmap."""
    points = random_points(30, SIZE, margin=12, seed=1)
    codec = GaussianHeatmapCodec(blur=blur)
    heatmap = codec.encode(points, SIZE).double()
    logits = torch.log(heatmap) - torch.log1p(-heatmap)
    decoded, confidence = codec.decode(logits, logits=True)
    assert torch.linalg.vector_norm(decoded - points, dim=-1).max().item() <= 0.02
    np.testing.assert_allclose(confidence, heatmap.flatten(-2).amax(-1), rtol=1e-5)


def test_raw_logits_would_bias_the_decoder():
    """The Newton step on raw logits log(H / (1 - H)), not quadratic near a peak of ~1, is measurably off."""
    points = random_points(50, SIZE, margin=12, seed=2)
    codec = GaussianHeatmapCodec()
    heatmap = codec.encode(points, SIZE).double()
    logits = torch.log(heatmap) - torch.log1p(-heatmap)
    wrong, _ = codec.decode(torch.exp(logits))  # log(exp(logits)): the Taylor step on the raw logits
    right, _ = codec.decode(logits, logits=True)
    assert torch.linalg.vector_norm(right - points, dim=-1).max() < 0.02
    assert torch.linalg.vector_norm(wrong - points, dim=-1).max() > 0.05


@pytest.mark.parametrize("stride,sigma", [(2, 4.0), (4, 8.0)])
def test_output_stride_scales_points_consistently(stride, sigma, intensity_centroid):
    size = (128, 96)
    codec = GaussianHeatmapCodec(sigma=sigma, stride=stride)
    points = random_points(50, size, margin=5 * sigma, seed=3)
    heatmap = codec.encode(points, size)
    assert heatmap.shape[-2:] == (math.ceil(128 / stride), math.ceil(96 / stride))
    # the blob sits at (p + 0.5) / stride - 0.5 in heatmap pixels, with sigma / stride
    np.testing.assert_allclose(intensity_centroid(heatmap), (points[0] + 0.5) / stride - 0.5, atol=1e-3)
    decoded, _ = codec.decode(heatmap)
    assert torch.linalg.vector_norm(decoded - points, dim=-1).max().item() <= 0.02


def test_sigma_in_mm_uses_the_spacing_per_dim():
    codec = GaussianHeatmapCodec(sigma=1.0, sigma_unit="mm", normalize=True)
    heatmap = codec.encode(torch.tensor([[40.0, 50.0]]), SIZE, spacing=[0.1, 0.2])  # 10 px along dim0, 5 along dim1
    assert heatmap[0, 50, 50].item() == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert heatmap[0, 40, 55].item() == pytest.approx(math.exp(-0.5), rel=1e-5)
    with pytest.raises(ValueError, match="spacing"):
        codec.encode(torch.tensor([[40.0, 50.0]]), SIZE)
    with pytest.raises(ValueError, match="positive"):
        codec.encode(torch.tensor([[40.0, 50.0]]), SIZE, spacing=[0.1, -0.2])


def test_missing_landmark_gives_an_empty_channel():
    heatmap = GaussianHeatmapCodec().encode(torch.tensor([[20.0, 30.0], [math.nan, math.nan]]), SIZE)
    assert heatmap[0].max() > 0.9 and heatmap[1].abs().max() == 0


def test_batched_decode_matches_single_and_runs_on_the_input_device():
    codec = GaussianHeatmapCodec()
    points = random_points(2 * 19, SIZE, margin=10, seed=4).reshape(2, 19, 2)
    batch = codec.encode(points, SIZE)
    assert batch.shape == (2, 19, *SIZE)
    decoded, confidence = codec.decode(batch)
    assert decoded.shape == (2, 19, 2) and confidence.shape == (2, 19)
    for b in range(2):
        single, conf = codec.decode(batch[b])
        torch.testing.assert_close(decoded[b], single)
        torch.testing.assert_close(confidence[b], conf)
    assert decoded.device == batch.device


def test_border_points_do_not_break_the_decoder():
    codec = GaussianHeatmapCodec()
    points = torch.tensor([[0.0, 40.0], [95.0, 0.3], [-3.0, 50.0]])  # on the border, near a corner, outside
    decoded, _ = codec.decode(codec.encode(points, SIZE))
    assert torch.isfinite(decoded).all()
    np.testing.assert_allclose(decoded[:2], points[:2], atol=0.02)  # one-sided stencil at the border
    # an outside point: argmax on the border pixel, the refinement extrapolates at most 1 px beyond it
    assert decoded[2, 0].item() == -1.0 and decoded[2, 1].item() == pytest.approx(50.0, abs=0.02)


@pytest.mark.parametrize("kwargs,match", [
    ({"sigma": 0.0}, "sigma"),
    ({"sigma": -2.0}, "sigma"),
    ({"sigma": float("nan")}, "sigma"),
    ({"stride": 0}, "stride"),
    ({"decode_method": "soft"}, "decode_method"),
    ({"sigma_unit": "cm"}, "sigma_unit"),
    ({"phi": 0.0}, "phi"),
])
def test_bad_codec_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianHeatmapCodec(**kwargs)


@pytest.mark.parametrize("as_type", TYPES)
def test_array_transforms_round_trip_and_keep_the_input_type(as_type):
    codec = GaussianHeatmapCodec()
    points = random_points(19, SIZE, margin=10, seed=5)
    heatmap = LandmarksToHeatmap(codec)(as_type(points.numpy()), SIZE)
    assert type(heatmap) is type(as_type(points.numpy())) and heatmap.shape == (19, *SIZE)
    decoded, confidence = HeatmapToLandmarks(codec)(heatmap)
    assert type(decoded) is type(heatmap) and type(confidence) is type(heatmap)
    assert np.abs(np.asarray(decoded) - points.numpy()).max() <= 0.02
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        LandmarksToHeatmap(codec)(as_type(np.zeros((19, 3), np.float32)), SIZE)


def test_dictionary_transforms_share_one_codec_and_keep_image_metadata():
    codec = GaussianHeatmapCodec(stride=2, sigma=4.0)
    affine = torch.diag(torch.tensor([0.5, 0.25, 1.0, 1.0], dtype=torch.float64))
    affine[:2, 3] = torch.tensor([10.0, 20.0])
    image = MetaTensor(torch.zeros(1, *SIZE), affine=affine, meta={"filename_or_obj": "x.png"})
    points = random_points(5, SIZE, margin=12, seed=6)
    d = LandmarksToHeatmapd(codec=codec)({"image": image, "landmarks": points})
    heatmap = d["heatmap"]
    assert isinstance(heatmap, MetaTensor) and heatmap.shape == (5, 48, 56)
    assert heatmap.meta["filename_or_obj"] == "x.png"
    np.testing.assert_array_equal(d["landmark_mask"], np.ones(5, np.float32))
    # heatmap pixel q covers input pixels around (q + 0.5) * 2 - 0.5: same world position through both affines
    q = torch.tensor([3.0, 7.0, 0.0, 1.0], dtype=torch.float64)
    p = torch.tensor([(3.0 + 0.5) * 2 - 0.5, (7.0 + 0.5) * 2 - 0.5, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(heatmap.affine @ q, image.affine @ p)
    d["pred"] = heatmap
    out = HeatmapToLandmarksd(codec=codec)(d)
    assert out["pred_landmarks"].shape == (5, 2) and out["pred_confidence"].shape == (5,)
    assert (out["pred_landmarks"] - points).abs().max() <= 0.02
    assert LandmarksToHeatmapD is LandmarksToHeatmapDict is LandmarksToHeatmapd
    assert HeatmapToLandmarksD is HeatmapToLandmarksDict is HeatmapToLandmarksd


def test_heatmap_mask_marks_missing_and_outside_points():
    points = torch.tensor([[10.0, 10.0], [math.nan, math.nan], [-1.0, 10.0], [95.4, 111.4]])
    d = LandmarksToHeatmapd(ref_key=None, spatial_size=SIZE)({"landmarks": points})
    np.testing.assert_array_equal(d["landmark_mask"], [1.0, 0.0, 0.0, 1.0])
    assert d["heatmap"][1].abs().max() == 0 and d["heatmap"][2].max() > 0  # outside: the tail is still rendered


def test_dictionary_encoder_reads_the_spacing_for_sigma_in_mm():
    codec = GaussianHeatmapCodec(sigma=1.0, sigma_unit="mm", normalize=True)
    data = {"landmarks": torch.tensor([[40.0, 50.0]]), "spacing": torch.tensor([0.1, 0.2])}
    d = LandmarksToHeatmapd(codec=codec, ref_key=None, spatial_size=SIZE)(data)
    assert d["heatmap"][0, 50, 50].item() == pytest.approx(math.exp(-0.5), rel=1e-5)  # 1 mm = 10 px along dim0
    assert d["heatmap"][0, 40, 55].item() == pytest.approx(math.exp(-0.5), rel=1e-5)  # 1 mm = 5 px along dim1
    with pytest.raises(ValueError, match="sigma is in mm but the data has no spacing key 'spacing'"):
        LandmarksToHeatmapd(codec=codec, ref_key=None, spatial_size=SIZE)({"landmarks": data["landmarks"]})
