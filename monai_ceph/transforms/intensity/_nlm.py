"""Fast non-local means of 2-D images in torch, weighted exactly as ``skimage.restoration.denoise_nl_means``.

Algorithm (Darbon et al. 2008; Froment 2014), the one scikit-image runs with ``fast_mode=True``: for every shift
``t`` in the search window ``[-d, d]^2`` the squared difference between the image and the image shifted by ``t``
is box-summed over a patch, which gives every pixel's patch distance for that shift in a few whole-image passes.
The weights follow scikit-image's fast mode to the bit where float arithmetic allows:

* the patch is the ``2r x 2r`` box ``(p - r, p + r]`` around ``p`` (``r = patch_size // 2``, even sizes are
  made odd first), and distances are divided by ``patch_size**2 * h**2``;
* ``distance = max(box_sum((x - x_t)**2) - 2 sigma**2 * (2r)**2, 0) / (patch_size**2 h**2)``;
* the weight is zero where ``distance > 5``, else Schraudolph's ``exp`` approximation of ``exp(-distance)``
  (scikit-image's ``_fast_exp``), so the weights are those skimage uses, not the exact exponential;
* the image is reflect-padded, so border pixels see a full search window;
* the centre pixel has the weight ``fast_exp(0)`` like any other zero-distance shift.

Each pair of shifts ``t`` and ``-t`` shares one distance image (the distance of ``p`` to ``p + t`` equals that of
``p + t`` to ``p``), so only half of the window is computed, as scikit-image also does.
"""

from __future__ import annotations

import torch

from ._padding import reflect_pad_2d

__all__ = ["fast_exp", "nl_means_2d"]

# Schraudolph (1999) constants as used by scikit-image's fast_exp.h: 2**20 / ln(2) and 1023 * 2**20 - 60801.
_EXP_A = 1512775.3951951856938
_EXP_BC = 1072632447
# Weights of patches further than this (in units of patch_size**2 * h**2) are zero, as in scikit-image.
DISTANCE_CUTOFF = 5.0


class _ExpBits:
    """How Schraudolph's ``exp`` is formed in a float dtype: ``bits(x) = int(bias + factor * _EXP_A * x)``.

    The approximation writes ``int32(_EXP_A * x) + _EXP_BC`` into the high word of an IEEE double. In float64
    that is the integer shifted left by 32. Its values have 20 mantissa bits, so for float32 the same number is
    built in float32 bits: rebias the exponent from 1023 to 127 (``- 896 << 20``) and move the bits up by 3,
    which here is folded into the scale (``factor = 8``) so the whole map is one multiply-add and one cast;
    the float32 rounding of that sum (about 1e9) moves a weight by at most 4e-6 of its value.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        if dtype == torch.float64:
            self.int_dtype, self.factor, self.shift = torch.int64, 1.0, 32
            self.bias = float(_EXP_BC)
        else:
            self.int_dtype, self.factor, self.shift = torch.int32, 8.0, 0
            self.bias = 8.0 * (_EXP_BC - (896 << 20))

    def to_float(self, y: torch.Tensor) -> torch.Tensor:
        """The float whose bits are ``int(y)`` (``y >= 0``; 0 maps to 0.0)."""
        if not self.shift:
            return y.to(self.int_dtype).view(self.dtype)
        # float64: skimage truncates -gain * distance toward zero, i.e. rounds bias - gain * distance up
        return y.ceil().to(self.int_dtype).bitwise_left_shift_(self.shift).view(self.dtype)


def fast_exp(x: torch.Tensor) -> torch.Tensor:
    """scikit-image's ``_fast_exp`` (Schraudolph 1999): ``exp(x)``, within about 4 %, for ``-700 < x <= 0``."""
    enc = _ExpBits(x.dtype if x.dtype == torch.float64 else torch.float32)
    return enc.to_float(x.to(enc.dtype) * (enc.factor * _EXP_A) + enc.bias)


def _window_sum(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Sums of ``width`` consecutive elements along ``dim`` (length shrinks by ``width - 1``), by doubling."""
    if width == 1:
        return x
    result: torch.Tensor | None = None
    covered = 0  # elements already summed into result
    block, block_width = x, 1  # sums of block_width consecutive elements
    remaining = width
    while True:
        if remaining & 1:
            if result is None:
                result = block
            else:
                n = result.shape[dim] - block_width
                result = result.narrow(dim, 0, n) + block.narrow(dim, covered, n)
            covered += block_width
        remaining >>= 1
        if not remaining:
            break
        n = block.shape[dim] - block_width
        block = block.narrow(dim, 0, n) + block.narrow(dim, block_width, n)
        block_width *= 2
    assert result is not None
    return result


def nl_means_2d(
    image: torch.Tensor, patch_size: int = 7, patch_distance: int = 11, h: float = 0.1, sigma: float = 0.0
) -> torch.Tensor:
    """Non-local means of each ``(H, W)`` image in ``image`` of shape ``(B, H, W)``, like skimage's fast mode.

    Args:
        image: floating point ``(B, H, W)`` tensor; every image is denoised on its own, on its device.
        patch_size: side of the patches compared (even values are increased by one, as in scikit-image).
        patch_distance: the search window is ``[-patch_distance, patch_distance]`` around each pixel.
        h: cut-off distance in grey levels; larger is smoother.
        sigma: standard deviation of the noise, subtracted from the patch distances (0: not used).

    Returns:
        the denoised ``(B, H, W)`` tensor, same dtype (float16/bfloat16 are computed in float32) and device.
    """
    out_dtype = image.dtype
    if image.dtype not in (torch.float32, torch.float64):
        image = image.float()
    if patch_size % 2 == 0:
        patch_size += 1
    r, d = patch_size // 2, patch_distance
    n_b, n_h, n_w = image.shape
    pad = r + d
    padded = reflect_pad_2d(image, (pad, pad, pad, pad))

    box = 2 * r
    enc = _ExpBits(image.dtype)
    # weight bits = bias - gain * (box sum of squared differences), at most bias when sigma > 0, 0 past the
    # cut-off; the differences are taken on the unscaled image, where close values subtract exactly.
    gain = enc.factor * _EXP_A / (patch_size * patch_size * h * h)
    y_max = torch.tensor(enc.bias + gain * 2.0 * sigma * sigma * box * box, dtype=image.dtype, device=image.device)
    y_cut = enc.bias - enc.factor * _EXP_A * DISTANCE_CUTOFF
    centre_weight = float(fast_exp(torch.zeros((), dtype=torch.float64)))  # exact in float32 too (20-bit mantissa)

    def interior(dr: int, dc: int) -> torch.Tensor:
        return padded[:, pad + dr : pad + dr + n_h, pad + dc : pad + dc + n_w]

    num = interior(0, 0) * centre_weight
    den = torch.full_like(num, centre_weight)
    # half of the window: (dr, dc) with dc > 0, or dc == 0 and dr > 0; -t is handled with t.
    shifts = [(dr, dc) for dc in range(0, d + 1) for dr in range(-d, d + 1) if dc > 0 or dr > 0]
    for dr, dc in shifts:
        # anchors q whose pair (q, q + t) touches the interior: rows [-max(dr, 0), n_h + max(-dr, 0)),
        # columns [-dc, n_w); their boxes need 2r - 1 more rows/columns of squared differences.
        q_rows, q_cols = n_h + abs(dr), n_w + dc
        if box:
            r0, c0 = pad - max(dr, 0) - r + 1, pad - dc - r + 1
            rows, cols = q_rows + box - 1, q_cols + box - 1
            ref = padded[:, r0 : r0 + rows, c0 : c0 + cols]
            moved = padded[:, r0 + dr : r0 + dr + rows, c0 + dc : c0 + dc + cols]
            dist = _window_sum(_window_sum(torch.sub(ref, moved).square_(), box, 1), box, 2)
            y = torch.sub(y_max, dist, alpha=gain)
            if sigma:
                y = y.clamp_(max=enc.bias)
            weight = enc.to_float(torch.nn.functional.threshold_(y, y_cut, 0.0))
        else:  # 1-pixel patches: every distance is zero
            weight = torch.full((n_b, q_rows, q_cols), centre_weight, dtype=image.dtype, device=image.device)
        # pixel p gets (weight at q = p) * x[p + t] and (weight at q = p - t) * x[p - t]
        w_fwd = weight[:, max(dr, 0) : max(dr, 0) + n_h, dc : dc + n_w]
        w_bwd = weight[:, max(-dr, 0) : max(-dr, 0) + n_h, 0:n_w]
        num.addcmul_(w_fwd, interior(dr, dc)).addcmul_(w_bwd, interior(-dr, -dc))
        den.add_(w_fwd).add_(w_bwd)
    return num.div_(den).to(out_dtype)
