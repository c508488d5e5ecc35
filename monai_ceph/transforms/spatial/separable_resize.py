"""MONAI's anti-aliased bilinear resize of a 2-D image as two small matrix products.

:func:`monai.transforms.spatial.functional.resize` with ``anti_aliasing`` smooths the whole input with a Gaussian
(``sigma = (factor - 1) / 2`` per downsampled dim, MONAI's :class:`~monai.networks.layers.GaussianFilter`) and then
interpolates. On a 1935 x 2400 radiograph the full-resolution smoothing takes most of a second on a CPU (a
one-channel convolution), and it computes millions of values that the interpolation then drops. Both steps are
linear and separable, so per dim they are one ``(n_out, n_in)`` matrix ``M = interpolation @ smoothing``, and the
resize is ``M0 @ image @ M1^T``: the same values (float rounding aside), for a fraction of the work. The matrices
are built by applying MONAI's own filter and ``torch.nn.functional.interpolate`` to the identity, so they follow
MONAI's kernel, truncation, zero padding and pixel-centre convention exactly, and are cached per size.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from monai.networks.layers import GaussianFilter
from monai.networks.layers.convutils import gaussian_1d

__all__ = ["antialiasing_sigma", "resize_matrix", "separable_resize"]


def antialiasing_sigma(in_size: Sequence[int], out_size: Sequence[int], sigma=None) -> list[float]:
    """The per-dim smoothing sigma of MONAI's anti-aliased resize (0 for a dim that is not downsampled)."""
    factors = [i / o for i, o in zip(in_size, out_size)]
    if sigma is None:
        return [max(0.0, (f - 1) / 2) for f in factors]
    given = list(sigma) if isinstance(sigma, Sequence) else [float(sigma)] * len(factors)
    return [float(s) * (f > 1) for s, f in zip(given, factors)]


@lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int, sigma: float) -> torch.Tensor:
    """``(n_out, n_in)`` float64: smooth with MONAI's Gaussian of ``sigma`` (none for 0), then linear interpolation
    at pixel centres (``align_corners=False``), as one matrix."""
    smoothing = torch.eye(n_in, dtype=torch.float64)
    if sigma > 0:  # MONAI's zero-padded correlation with its (symmetric) kernel: a band of kernel values
        kernel = gaussian_1d(torch.tensor(sigma, dtype=torch.float64), truncated=GaussianFilter(1, sigma).truncated,
                             approx="erf").to(torch.float64)  # MONAI's float32 kernel values
        radius = (len(kernel) - 1) // 2
        offset = torch.arange(n_in)[None, :] - torch.arange(n_in)[:, None] + radius  # kernel index of (i, j)
        inside = (offset >= 0) & (offset < len(kernel))
        smoothing = torch.where(inside, kernel[offset.clamp(0, len(kernel) - 1)], torch.zeros((), dtype=torch.float64))
    # row i of the smoothing is output pixel i; interpolating the rows' impulse responses along i gives M
    return F.interpolate(smoothing.T[:, None], size=n_out, mode="linear", align_corners=False)[:, 0].T.contiguous()


def separable_resize(img: torch.Tensor, out_size: Sequence[int], sigma=None) -> torch.Tensor:
    """Anti-aliased bilinear resize of a channel-first 2-D tensor ``(C, dim0, dim1)`` to ``out_size``, equal to
    MONAI's ``Resize(out_size, mode="bilinear", anti_aliasing=True, anti_aliasing_sigma=sigma)`` data."""
    size_in = tuple(img.shape[1:])
    if size_in == tuple(int(s) for s in out_size):
        return img
    s0, s1 = antialiasing_sigma(size_in, out_size, sigma)
    m0 = resize_matrix(size_in[0], int(out_size[0]), s0).to(img.dtype)
    m1 = resize_matrix(size_in[1], int(out_size[1]), s1).to(img.dtype)
    return m0 @ img @ m1.T
