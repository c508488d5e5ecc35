"""mask_outside_source / MaskOutsideSource(d): decoding stays inside the source image when the physical-scale input
pads it (a stronger peak in the padding loses to the best one inside); an unpadded input is unchanged."""

import numpy as np
import pytest
import torch

from monai.data import MetaTensor, list_data_collate

from monai_ceph.transforms import (
    GaussianHeatmapCodec,
    LandmarksToSource,
    MaskOutsideSource,
    MaskOutsideSourced,
    PhysicalField,
    ResizeWithLandmarks,
    mask_outside_source,
)

CODEC = GaussianHeatmapCodec(sigma=1.5)


def source(shape=(50, 40)):
    img = MetaTensor(torch.rand(1, *shape))
    img.meta["spatial_shape"] = np.array(shape)
    img.meta["original_affine"] = img.affine.clone()
    return img


def padded_input():
    """50 x 40 px of 1 mm in a 64 x 64 mm field at 2 mm/px: the image covers model pixels ~[3.5, 28.5) x [6, 26)."""
    model, _, _ = PhysicalField(spatial_size=(32, 32), pixel_spacing=2.0)(source(), spacing=(1.0, 1.0))
    return model


@pytest.mark.parametrize("as_numpy", [False, True])
def test_peak_in_the_padding_loses_to_the_best_inside(as_numpy):
    model = padded_input()
    inside, padding = torch.tensor([[16.3, 15.6]]), torch.tensor([[1.0, 30.0]])
    heatmap = torch.maximum(0.6 * CODEC.encode(inside, (32, 32)), CODEC.encode(padding, (32, 32)))  # (1, 32, 32)
    assert CODEC.decode(heatmap[None])[0][0, 0].tolist() == pytest.approx([1.0, 30.0], abs=0.05)
    masked = MaskOutsideSource(CODEC)(heatmap.numpy() if as_numpy else heatmap, model)
    assert isinstance(masked, np.ndarray) == as_numpy
    points, _ = CODEC.decode(torch.as_tensor(masked)[None])
    np.testing.assert_allclose(points[0, 0].numpy(), inside[0].numpy(), atol=0.05)
    src = LandmarksToSource()(points[0].double(), model)
    assert ((src >= -0.5) & (src <= torch.tensor([49.5, 39.5], dtype=torch.float64))).all()
    # the pixels inside the image are untouched, the padding holds the channel's minimum
    h = torch.as_tensor(masked)
    assert torch.equal(h[0, 8:24, 8:24], heatmap[0, 8:24, 8:24])
    assert h[0, 0, 31] == heatmap.min() and h[0, 31, 0] == heatmap.min()


def test_unpadded_input_is_unchanged_and_batches_work():
    resized, _, _ = ResizeWithLandmarks(spatial_size=(32, 32))(source())
    heatmap = torch.rand(3, 32, 32)
    assert torch.equal(mask_outside_source(heatmap, resized), heatmap)
    batch = list_data_collate([{"image": padded_input()}, {"image": resized}])["image"]
    maps = torch.rand(2, 3, 32, 32)
    out = mask_outside_source(maps, batch)
    assert torch.equal(out[1], maps[1]) and not torch.equal(out[0], maps[0])
    torch.testing.assert_close(out[0], mask_outside_source(maps[0], padded_input()))


def test_stride_and_dictionary_form():
    codec = GaussianHeatmapCodec(sigma=2.0, stride=2)
    model = padded_input()
    heatmap = torch.rand(2, 16, 16)
    d = MaskOutsideSourced(keys="pred", ref_key="image", codec=codec)({"pred": heatmap, "image": model})
    # heatmap pixel h has its centre at model pixel 2h + 0.5: rows 2-14 of 16 lie inside the image in dim 0
    kept = (d["pred"] == heatmap).all(0)
    assert kept[8, 8] and not kept[0, 8] and not kept[15, 8] and not kept[8, 0]
    with pytest.raises(KeyError, match="'image' is not in the data"):
        MaskOutsideSourced(keys="pred")({"pred": heatmap})
    with pytest.raises(ValueError, match=r"\(K, h0, h1\) or \(B, K, h0, h1\)"):
        mask_outside_source(torch.rand(32, 32), model)


def test_image_without_source_shape_is_left_as_it_is():
    model = padded_input()
    del model.meta["spatial_shape"]
    heatmap = torch.rand(2, 32, 32)
    assert mask_outside_source(heatmap, model) is heatmap
