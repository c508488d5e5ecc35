"""Synthetic blobs for the exactness tests of the landmark-carrying transforms."""

import pytest
import torch

from monai_ceph.transforms import GaussianHeatmapCodec


def _blob(spatial_size, centre, sigma):
    """A one-channel float32 image ``(1, *spatial_size)`` holding a unit Gaussian at the sub-pixel ``centre``."""
    codec = GaussianHeatmapCodec(sigma=sigma, normalize=True)
    return codec.encode(torch.as_tensor([centre], dtype=torch.float64), spatial_size)


def _centroid(image):
    """Intensity centroid (dim0, dim1) of channel 0 of ``image``, float64 numpy."""
    c = torch.as_tensor(image)[0].to(torch.float64)
    g0 = torch.arange(c.shape[0], dtype=torch.float64)
    g1 = torch.arange(c.shape[1], dtype=torch.float64)
    total = c.sum()
    return torch.stack([(c.sum(1) * g0).sum() / total, (c.sum(0) * g1).sum() / total]).numpy()


@pytest.fixture
def blob_image():
    """``blob_image(spatial_size, centre, sigma)``: a synthetic landmark whose position is known exactly."""
    return _blob


@pytest.fixture
def intensity_centroid():
    """``intensity_centroid(image)``: where an image's intensity mass is, in pixel indices."""
    return _centroid
