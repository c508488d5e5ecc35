import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer

from monai_ceph.inferers import TestTimeAugmentationInferer, TTAInferer
from monai_ceph.inferers.tta import zoom_about_centre
from monai_ceph.transforms import GaussianHeatmapCodec, HeatmapToLandmarks

SIZE = (64, 48)
CENTRE = (30.37, 21.81)


def _ramp(size=SIZE):
    """A linear ramp along each dim: bilinear resampling reproduces it exactly, so only the geometry is tested."""
    g0, g1 = torch.meshgrid(torch.arange(size[0], dtype=torch.float64), torch.arange(size[1], dtype=torch.float64),
                            indexing="ij")
    return torch.stack([g0, g1])[None]  # (1, 2, *size): channel c holds the dim-c pixel index


@pytest.mark.parametrize("scale", [0.8, 0.9, 1.1, 1.25])
def test_zoom_moves_content_to_c_plus_s_times_offset(scale):
    ramp = _ramp()
    out = zoom_about_centre(ramp, scale)
    c = (torch.tensor(SIZE, dtype=torch.float64) - 1) / 2
    expected = c[:, None, None] + (ramp[0] - c[:, None, None]) / scale  # output pixel i shows input c + (i - c) / s
    inner = (slice(None), slice(10, -10), slice(10, -10))
    torch.testing.assert_close(out[0][inner], expected[inner], atol=1e-9, rtol=0)
    # and the inverse zoom undoes it exactly where no border was involved
    torch.testing.assert_close(zoom_about_centre(out, 1 / scale)[0][inner], ramp[0][inner], atol=1e-9, rtol=0)


def test_identity_network_gives_back_its_input_through_every_variant():
    """The merged output of a network that returns its input is the input: each variant is mapped back exactly."""
    x = _ramp().float() / 64 + 0.1
    tta = TestTimeAugmentationInferer(scales=(0.9, 1.0, 1.1), logits=False, heatmap_mode="bilinear")
    variants = tta.variants(x, lambda t: t)
    assert variants.shape == (3, *x.shape)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    for v in variants:
        torch.testing.assert_close(v[inner], x[inner], atol=1e-5, rtol=0)


class BlobDetector(torch.nn.Module):
    """A 'network' that finds the brightest blob of its input and returns the codec's heatmap logits there."""

    def __init__(self, codec):
        super().__init__()
        self.codec = codec
        self.seen = []

    def forward(self, x):
        out = []
        for image in x:
            img = image[0].double()
            g0 = torch.arange(img.shape[0], dtype=torch.float64)[:, None]
            g1 = torch.arange(img.shape[1], dtype=torch.float64)[None]
            w = img.clamp(min=0) ** 4
            centre = torch.stack([(w * g0).sum() / w.sum(), (w * g1).sum() / w.sum()])
            self.seen.append(centre)
            heat = self.codec.encode(centre[None], tuple(img.shape)).clamp(1e-6, 1 - 1e-6)
            out.append(torch.logit(heat).float())
        return torch.stack(out)


def test_merged_heatmap_decodes_to_the_landmark_and_variants_saw_it_moved():
    codec = GaussianHeatmapCodec(sigma=2.0)
    blob = GaussianHeatmapCodec(sigma=3.0, normalize=True).encode(torch.tensor([CENTRE], dtype=torch.float64), SIZE)
    image = MetaTensor(blob[None].float())
    net = BlobDetector(codec)
    merged = TTAInferer(scales=(0.9, 1.0, 1.1), gammas=(0.8, 1.0))(image, net)
    assert merged.shape == (1, 1, *SIZE) and not isinstance(merged, MetaTensor)
    assert len(net.seen) == 6
    c = (np.array(SIZE) - 1) / 2
    for seen, scale in zip(net.seen[::2], (0.9, 1.0, 1.1)):  # the zoomed inputs showed the blob at c + s (p - c)
        np.testing.assert_allclose(seen.numpy(), c + scale * (np.array(CENTRE) - c), atol=0.02)
    landmarks, _ = HeatmapToLandmarks(codec, logits=True)(merged[0])
    np.testing.assert_allclose(landmarks[0].numpy(), CENTRE, atol=0.02)  # heatmap interpolation only
    bilinear = TTAInferer(scales=(0.9, 1.0, 1.1), heatmap_mode="bilinear")(image, BlobDetector(codec))
    np.testing.assert_allclose(HeatmapToLandmarks(codec, logits=True)(bilinear[0])[0][0].numpy(), CENTRE, atol=0.05)


def test_is_an_inferer_and_runs_through_another_inferer():
    x = torch.rand(2, 1, *SIZE)
    tta = TestTimeAugmentationInferer(scales=(1.0,), gammas=(1.0,), inferer=SimpleInferer())
    assert isinstance(tta, Inferer)
    net = torch.nn.Conv2d(1, 3, 3, padding=1)
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(tta(x, net), expected, atol=1e-4, rtol=1e-4)  # one variant: logits round trip


def test_gamma_variant_applies_the_curve_in_the_value_range():
    x = torch.linspace(0, 2, 16).reshape(1, 1, 4, 4)
    tta = TestTimeAugmentationInferer(scales=(1.0,), gammas=(2.0,), value_range=(0.0, 2.0), logits=False)
    out = tta(x, lambda t: t)
    torch.testing.assert_close(out, (x / 2) ** 2 * 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scales"):
        TestTimeAugmentationInferer(scales=())
    with pytest.raises(ValueError, match="scales"):
        TestTimeAugmentationInferer(gammas=(0.0,))
    with pytest.raises(ValueError, match="value_range"):
        TestTimeAugmentationInferer(value_range=(1.0, 1.0))
    with pytest.raises(TypeError, match="heatmap"):
        TestTimeAugmentationInferer()(torch.zeros(1, 1, 8, 8), lambda t: {"a": t})
