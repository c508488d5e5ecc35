"""Intensity transforms for 2-D radiographs: contrast-limited adaptive histogram equalisation and non-local means.

Both work on channel-first 2-D images ``(C, dim0, dim1)`` (each channel on its own), accept numpy arrays and
torch tensors, return the input's type (torch results stay on the input's device; ``MetaTensor`` metadata is
kept), and run in torch on whatever device the tensor lives on. Their outputs reproduce scikit-image's
``equalize_adapthist`` and ``denoise_nl_means(fast_mode=True)`` within the tolerances stated on each class.

The defaults are the preprocessing applied to a radiograph resized to the model input (736 x 576, i.e.
``spatial_size=(576, 736)``): ``CLAHE()`` then ``NLMDenoise()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_tensor

from monai_ceph.transforms.utils import convert_like

from ._clahe import clahe_2d
from ._nlm import nl_means_2d

__all__ = ["CLAHE", "NLMDenoise", "ToGreyscale"]


def _positive_int(value, name: str, owner: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _positive_float(value, name: str, owner: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok or value != value or value == float("inf"):
        raise ValueError(f"{owner}: {name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}.")
    return float(value)


def _channels(img: NdarrayOrTensor, owner: str) -> torch.Tensor:
    """The plain ``(C, dim0, dim1)`` tensor of ``img`` (numpy, tensor or ``MetaTensor``), on its device."""
    data = convert_to_tensor(img, track_meta=False)
    if data.ndim != 3 or min(data.shape) < 1:
        raise ValueError(
            f"{owner}: expected a non-empty channel-first 2-D image (C, dim0, dim1), got shape {tuple(data.shape)}."
        )
    if data.dtype == torch.bool or data.is_complex():
        raise ValueError(f"{owner}: expected a real-valued image, got dtype {data.dtype}.")
    return data


class CLAHE(Transform):
    """
    Contrast-limited adaptive histogram equalisation of each channel, as ``skimage.exposure.equalize_adapthist``.

    Each channel is rescaled over its own min..max, quantised to ``2**14`` grey levels and ``nbins`` bins, split
    into ``kernel_size`` contextual regions whose histograms are clipped at ``clip_limit`` (the excess is
    redistributed), and every pixel is mapped through the bilinear blend of its four nearest regions' cumulative
    histograms. The output is float in ``[0, 1]`` (float64 for float64 input, else float32); a constant channel
    has no contrast to equalise and gives zeros (scikit-image would give a clipped constant).

    Agreement with scikit-image: for a channel ``x``, the result equals
    ``equalize_adapthist(rescale_intensity(x.astype(float64), out_range=(0, 1)), kernel_size, clip_limit, nbins)``
    (for unsigned integer input: ``equalize_adapthist(x, ...)``) to a maximum absolute difference of ``1e-5``;
    the computation follows scikit-image's integer and float steps, so in practice the only difference is the
    float32 rounding of the output (about ``3e-8``). The axes are the array's own: ``kernel_size`` is in MONAI
    ``(dim0, dim1)`` order and the result is that of scikit-image on the same ``(dim0, dim1)`` array.

    Args:
        kernel_size: contextual region size, an int (both dims) or one per spatial dim; ``None`` (default) is
            scikit-image's 1/8 of each dimension, i.e. ``(72, 92)`` on the ``(576, 736)`` model input.
        clip_limit: clipping limit (> 0) as a fraction of a region's pixels (``>= 1``: no clipping, plain AHE);
            default ``0.01`` as scikit-image (about OpenCV's ``clipLimit=2.5`` with 256 bins).
        nbins: number of histogram bins, default 256.

    Raises:
        ValueError: for a non-positive or non-integer ``kernel_size``/``nbins``, a ``clip_limit`` not > 0, or an
            input that is not a channel-first 2-D image.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, kernel_size: Sequence[int] | int | None = None, clip_limit: float = 0.01, nbins: int = 256
    ) -> None:
        name = type(self).__name__
        self.kernel_size: tuple[int, int] | None = None
        if kernel_size is not None:
            try:
                sizes = (kernel_size,) * 2 if isinstance(kernel_size, Integral) else tuple(kernel_size)
            except TypeError:  # not iterable
                sizes = ()
            if len(sizes) != 2:
                raise ValueError(f"{name}: kernel_size must be an int or 2 ints (one per dim), got {kernel_size!r}.")
            k0, k1 = (_positive_int(k, "kernel_size", name) for k in sizes)
            self.kernel_size = (k0, k1)
        self.clip_limit = _positive_float(clip_limit, "clip_limit", name)
        self.nbins = _positive_int(nbins, "nbins", name)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``, numpy or torch, any real dtype.
        """
        out = clahe_2d(_channels(img, type(self).__name__), self.kernel_size, self.clip_limit, self.nbins)
        return convert_like(out, img)


class NLMDenoise(Transform):
    """
    Non-local means denoising of each channel, as ``skimage.restoration.denoise_nl_means(fast_mode=True)``.

    Every pixel ``p`` becomes the weighted mean of the pixels ``q`` within ``patch_distance`` of it (per axis),
    weighted by the similarity of the patches around them: ``w = exp(-D)``, ``w = 0`` where ``D > 5``, with
    ``D = max(sum_B((x[p + b] - x[q + b])**2 - 2 sigma**2), 0) / (patch_size**2 h**2)`` over the box ``B`` of
    scikit-image's fast mode (Darbon et al. 2008): ``(patch_size - 1)**2`` offsets, even patch sizes first made
    odd. As in scikit-image the image is reflect-padded and ``exp`` is Schraudolph's fast approximation (within
    4 %). Intensities are used as given (scikit-image's ``preserve_range=True``): ``h`` and ``sigma`` are in the
    image's units, ``[0, 1]`` after :class:`CLAHE`. The output is float (float64 for float64 input, else float32).

    Agreement with scikit-image: each channel equals ``denoise_nl_means(x, patch_size, patch_distance, h,
    fast_mode=True, sigma=sigma, preserve_range=True)`` to a mean absolute difference below ``1e-6`` and a maximum
    absolute difference of ``1e-3`` for images in ``[0, 1]``. Nearly all pixels agree to ``1e-6``; the maximum
    is set by the rare patch distance that float32 rounding moves across the cut-off ``D = 5`` (its weight, 0.0068,
    switches on or off): about one pixel per radiograph, by ``9e-5`` in the worst case seen on ISBI images. With
    float64 input the result equals scikit-image's to ``1e-12``.

    Defaults: ``patch_size=5, patch_distance=3, h=0.02`` denoise a CLAHE-equalised radiograph at the
    ``(576, 736)`` model input (grain of standard deviation about 0.006, left at 0.0015) without blurring edges,
    and keep CLAHE + NLM within 0.1 s per image on 2 CPU cores (``benchmarks/intensity.py``). scikit-image's
    defaults (``7, 11, 0.1``) search a 23 x 23 window (11 times the work) and blur this image.

    Args:
        patch_size: side of the compared patches (>= 1).
        patch_distance: radius of the search window (>= 0; 0 returns the image).
        h: cut-off distance in grey levels (> 0); higher is smoother.
        sigma: standard deviation of the noise (>= 0), subtracted from the patch distances; 0 (default): unused.

    Raises:
        ValueError: for out-of-range parameters or an input that is not a channel-first 2-D image.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, patch_size: int = 5, patch_distance: int = 3, h: float = 0.02, sigma: float = 0.0) -> None:
        name = type(self).__name__
        self.patch_size = _positive_int(patch_size, "patch_size", name)
        self.patch_distance = _positive_int(patch_distance, "patch_distance", name, minimum=0)
        self.h = _positive_float(h, "h", name)
        self.sigma = _positive_float(sigma, "sigma", name, allow_zero=True)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``, numpy or torch, any real dtype.
        """
        data = _channels(img, type(self).__name__)
        if not data.is_floating_point():
            data = data.float()
        out = nl_means_2d(data, self.patch_size, self.patch_distance, self.h, self.sigma)
        return convert_like(out, img)


class ToGreyscale(Transform):
    """
    Reduce a channel-first colour radiograph to one grey channel: 1 channel passes through, 3 (RGB) or 4 (RGBA,
    alpha dropped) channels are combined with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114), so a grey
    image stored as RGB (ISBI 2015's JPEGs) comes back unchanged. Other channel counts are an error.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]
    weights = (0.299, 0.587, 0.114)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if img.ndim < 3:
            raise ValueError(f"ToGreyscale expects a channel-first image (C, dim0, dim1, ...), got shape {tuple(img.shape)}.")
        channels = img.shape[0]
        if channels == 1:
            return img
        if channels not in (3, 4):
            raise ValueError(f"ToGreyscale: {channels} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA).")
        x = convert_to_tensor(img, track_meta=get_track_meta())
        w = torch.tensor(self.weights, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
        grey = torch.tensordot(w, x[:3].to(w.dtype), dims=1)[None]
        if x.is_floating_point():
            grey = grey.to(x.dtype)
        out = convert_like(grey, img)
        return out
