"""Contrast-limited adaptive histogram equalisation of 2-D images in torch, step for step as scikit-image.

``skimage.exposure.equalize_adapthist`` (after Zuiderveld, Graphics Gems IV, 1994), vectorised over images,
tiles and pixels so it runs on the tensor's device:

1. quantise each image to ``2**14`` grey levels over its own min..max, then to ``nbins`` histogram bins;
2. reflect-pad so that the size is a multiple of the kernel, with half a kernel in front;
3. histogram each ``kernel_size`` tile, clip it at ``clip_limit * tile_pixels`` and hand the excess back to
   the bins exactly as scikit-image's ``clip_histogram`` does (its residual loop runs over all tiles at once);
4. turn every histogram into a grey-level map (its scaled cumulative sum);
5. interpolate the maps of the four nearest tiles bilinearly at every pixel, truncate to integer levels, and
   rescale the result to ``[0, 1]``.

The arithmetic follows scikit-image's dtypes (integer histograms, float64 maps and coefficients, float32
accumulation, integer truncation), so results agree with it to float rounding.
"""

from __future__ import annotations

import math

import torch

from ._padding import reflect_pad_2d

__all__ = ["NR_OF_GREY", "clahe_2d", "default_kernel_size"]

NR_OF_GREY = 2**14  # grey levels used inside the algorithm, as in scikit-image
_UINT16_MAX = 2**16 - 1


def default_kernel_size(spatial_shape: tuple[int, int]) -> tuple[int, int]:
    """scikit-image's default contextual region: 1/8 of each spatial dimension (at least 1 pixel)."""
    return (max(spatial_shape[0] // 8, 1), max(spatial_shape[1] // 8, 1))


def _grey_bins(image: torch.Tensor, nbins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram bins (int32) of the grey levels scikit-image computes, and which images have contrast.

    Each image is rescaled to ``[0, 1]`` over its own min..max (in float64). Integer images are then quantised
    to ``NR_OF_GREY`` levels directly, float images through scikit-image's float path (``[0, 1]`` -> ``uint16``
    -> 14 bits); a level's bin is ``level // (1 + NR_OF_GREY // nbins)``.
    """
    x = image.to(torch.float64)
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    contrast = hi > lo
    x01 = x.sub_(lo).div_(torch.where(contrast, hi - lo, 1.0))
    if image.is_floating_point():
        x01 = x01.mul_(_UINT16_MAX).round_().div_(_UINT16_MAX)
    levels = x01.mul_(NR_OF_GREY - 1).round_()
    return levels.div_(1 + NR_OF_GREY // nbins).floor_().to(torch.int32), contrast


def _clip_histograms(hist: torch.Tensor, clim: int) -> torch.Tensor:
    """Clip every histogram (rows of ``hist``, int64) at ``clim`` and redistribute the excess like scikit-image.

    Same integer steps as ``skimage.exposure._adapthist.clip_histogram``: a uniform increment first, then the
    residual is dealt out one count per bin along strided sweeps; each histogram keeps its own sweep position,
    so the sweep is one vectorised step per bin position for all histograms together.
    """
    n_bins = hist.shape[-1]
    excess = (hist - clim).clamp_(min=0).sum(-1)
    hist = hist.clamp(max=clim)
    bin_incr = excess // n_bins
    upper = (clim - bin_incr)[:, None]
    low = hist < upper
    hist = hist + low * bin_incr[:, None]
    excess -= low.sum(-1) * bin_incr
    mid = (hist >= upper) & (hist < clim)
    excess += torch.where(mid, hist - clim, 0).sum(-1)
    hist = torch.where(mid, clim, hist)

    # residual: sweep `index` over the bins; at each index add one to every under-limit bin of the slice
    # hist[index::step], step = max(1, n_under // excess); a new sweep starts while a sweep made progress.
    pos = torch.arange(n_bins, device=hist.device)
    index = torch.zeros_like(excess)
    sweep_start = excess.clone()
    active = excess > 0
    while bool(active.any()):
        under = hist < clim
        n_under = under.sum(-1)
        active &= n_under > 0  # nothing left to fill: the histogram cannot change any more
        step = (n_under // excess.clamp(min=1)).clamp_(min=1)
        offset = pos - index[:, None]
        chosen = under & active[:, None] & (offset >= 0) & (offset % step[:, None] == 0)
        hist += chosen
        excess -= chosen.sum(-1)
        index += 1
        swept = active & (index == n_bins)
        stop = (excess <= 0) | (swept & (excess == sweep_start))
        index = torch.where(swept, 0, index)
        sweep_start = torch.where(swept, excess, sweep_start)
        active &= ~stop
    return hist


def _tile_maps(bins: torch.Tensor, kernel: tuple[int, int], n_tiles: tuple[int, int], clip_limit: float, nbins: int):
    """Grey-level maps ``(B, n0, n1, nbins)`` (integers, as float64) of the tiles of the padded bin image."""
    (k0, k1), (n0, n1) = kernel, n_tiles
    n_img = bins.shape[0]
    tiles = bins[:, k0 // 2 : k0 // 2 + n0 * k0, k1 // 2 : k1 // 2 + n1 * k1]
    tile_id = torch.arange(n_img * n0 * n1, device=bins.device, dtype=bins.dtype).view(n_img, n0, 1, n1, 1)
    flat = (tile_id * nbins + tiles.reshape(n_img, n0, k0, n1, k1)).reshape(-1)
    hist = torch.bincount(flat, minlength=n_img * n0 * n1 * nbins).view(-1, nbins).to(torch.int64)
    tile_pixels = k0 * k1
    clim = max(int(clip_limit * tile_pixels), 1)
    hist = _clip_histograms(hist, clim)
    # scikit-image: float64 cumulative sum * ((levels - 1) / pixels), clipped, truncated to int
    maps = hist.cumsum(-1).to(torch.float64) * ((NR_OF_GREY - 1) / tile_pixels)
    return maps.clamp_(max=NR_OF_GREY - 1).trunc_().view(n_img, n0, n1, nbins)


def _axis_weights(size: int, pad: int, k: int, n_tiles: int, device: torch.device):
    """For every output position along one axis: the two tile indices it blends and their float64 weights."""
    padded_pos = torch.arange(size, device=device, dtype=torch.int32) + pad
    block = padded_pos // k  # block b blends map rows b - 1 and b of the edge-padded tile grid
    frac = (padded_pos % k).to(torch.float64) / k
    first = (block - 1).clamp(0, n_tiles - 1)
    second = block.clamp(0, n_tiles - 1)
    return (first, second), (1.0 - frac, frac)


def clahe_2d(
    image: torch.Tensor, kernel_size: tuple[int, int] | None = None, clip_limit: float = 0.01, nbins: int = 256
) -> torch.Tensor:
    """CLAHE of each ``(H, W)`` image of a ``(B, H, W)`` tensor, as ``skimage.exposure.equalize_adapthist``.

    Args:
        image: ``(B, H, W)`` tensor of any real dtype; each image is equalised on its own, on its device.
        kernel_size: ``(k0, k1)`` contextual region; ``None``: 1/8 of each dimension.
        clip_limit: clipping limit (> 0) as a fraction of a tile's pixels; ``>= 1`` is no clipping (AHE).
        nbins: histogram bins.

    Returns:
        float tensor (float64 for float64 input, else float32) in ``[0, 1]``; an image without contrast
        (constant) gives zeros.
    """
    n_img, size0, size1 = image.shape
    k0, k1 = default_kernel_size((size0, size1)) if kernel_size is None else kernel_size
    out_dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    bins, contrast = _grey_bins(image, nbins)

    pad0, pad1 = k0 // 2, k1 // 2
    end0 = (k0 - size0 % k0) % k0 + math.ceil(k0 / 2)
    end1 = (k1 - size1 % k1) % k1 + math.ceil(k1 / 2)
    bins = reflect_pad_2d(bins, (pad0, end0, pad1, end1))
    n_tiles = ((size0 + pad0 + end0) // k0 - 1, (size1 + pad1 + end1) // k1 - 1)
    maps = _tile_maps(bins, (k0, k1), n_tiles, clip_limit, nbins)

    # bilinear blend of the four neighbouring tile maps, only at the unpadded pixels
    (r_a, r_b), (wr_a, wr_b) = _axis_weights(size0, pad0, k0, n_tiles[0], image.device)
    (c_a, c_b), (wc_a, wc_b) = _axis_weights(size1, pad1, k1, n_tiles[1], image.device)
    flat_maps = maps.reshape(-1)
    img_base = torch.arange(n_img, device=image.device, dtype=torch.int32).view(-1, 1, 1) * (maps[0].numel())
    pixel_bins = bins[:, pad0 : pad0 + size0, pad1 : pad1 + size1] + img_base
    result = torch.zeros((n_img, size0, size1), dtype=torch.float32, device=image.device)
    # scikit-image's order: edges (0, 0), (0, 1), (1, 0), (1, 1); float64 products summed in float32
    for rows, w_rows in ((r_a, wr_a), (r_b, wr_b)):
        for cols, w_cols in ((c_a, wc_a), (c_b, wc_b)):
            index = pixel_bins + (rows * (n_tiles[1] * nbins))[:, None] + (cols * nbins)[None, :]
            mapped = flat_maps.index_select(0, index.view(-1)).view(index.shape)
            result += mapped.mul_(w_cols[None, :] * w_rows[:, None]).to(torch.float32)
    result = result.to(torch.int64).to(out_dtype)  # scikit-image truncates to its integer dtype here

    lo = result.amin(dim=(-2, -1), keepdim=True)
    hi = result.amax(dim=(-2, -1), keepdim=True)
    spread = hi > lo
    out = (result - lo) / torch.where(spread, hi - lo, 1.0)
    return torch.where(contrast & spread, out, 0.0)
