"""Heatmap codec: the one object that defines how landmarks become heatmaps and back.

:class:`GaussianHeatmapCodec` owns every parameter that encoding and decoding must agree on
(sigma and its unit, amplitude, output stride, decode method). The transforms
:class:`~monai_ceph.transforms.LandmarksToHeatmap` and :class:`~monai_ceph.transforms.HeatmapToLandmarks`
are built from one codec, so a target and its decoding can never disagree.

Coordinates follow the package convention: points are ``(..., K, 2)`` in the order of the spatial dims, in
pixel-index units of the model input where integer values are pixel centres. A heatmap at output stride ``s``
has ``ceil(size / s)`` pixels per dim and its pixel ``j`` covers input pixels ``[j*s, (j+1)*s)``, so

    heatmap coordinate ``q = (p + 0.5) / s - 0.5``  and  input coordinate ``p = (q + 0.5) * s - 0.5``

(the align_corners=False convention of ``torch.nn.functional.interpolate`` and MONAI's ``Resize``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["GaussianHeatmapCodec"]


class GaussianHeatmapCodec:
    """Sub-pixel Gaussian heatmap encoder/decoder, batched, on the tensor's device.

    Encoding renders, for each landmark ``c`` (sub-pixel, never rounded),

        ``H(p) = A * exp(-|p - c|^2 / (2 sigma^2))``,   ``A = phi / (sigma * sqrt(2 pi))``  (``normalize=False``)
        or ``A = 1`` (``normalize=True``),

    the CephRes-MHNet target (``sigma=2``, ``phi=5``: peak 0.997). A landmark that is not finite (missing) gives an
    all-zero channel. A finite landmark outside the image still renders the part of its Gaussian that falls inside.

    Decoding takes the per-channel argmax and refines it:

    - ``"dark"`` (default): one Newton step on the log-heatmap around the argmax (the Taylor expansion of DARK,
      Zhang et al., CVPR 2020). The log of a Gaussian is a quadratic, so for a Gaussian-shaped heatmap the step is
      exact (round-trip error ~1e-4 px). With ``logits=True`` the log-heatmap is computed as ``logsigmoid(logits)``:
      a network trained with ``BCEWithLogits`` against these targets predicts ``sigmoid(logits) ~ H``, so
      ``log H ~ logsigmoid(logits)``; the raw logits ``log(H / (1 - H))`` are *not* quadratic near a peak close to 1
      and must not be refined directly.
    - ``"centroid"``: intensity centroid of the heatmap (probabilities for logits) in a
      ``(2r+1)^2`` window around the argmax (a local soft-argmax), ``r = centroid_radius`` or ``ceil(4 sigma)``.
    - ``"argmax"``: the integer argmax only (for comparison).

    Confidence is the peak value of the heatmap (``sigmoid`` of the peak logit for logits), in ``[0, A]``.

    Args:
        sigma: Gaussian standard deviation, > 0, in model-input pixels (``sigma_unit="pixel"``) or in millimetres
            (``sigma_unit="mm"``, converted per dim with the sample's spacing at model resolution). It describes
            the blob in input pixels, independent of ``stride``; in the heatmap it is ``sigma / stride``.
        phi: the paper's amplitude numerator (``A = phi / (sigma sqrt(2 pi))``); ignored when ``normalize``.
        normalize: ``True`` for a unit peak instead of the paper's amplitude.
        sigma_unit: ``"pixel"`` or ``"mm"``.
        stride: output stride (int >= 1): heatmaps have ``ceil(size / stride)`` pixels per dim.
        decode_method: ``"dark"``, ``"centroid"`` or ``"argmax"``.
        blur: with ``"dark"``, smooth the (probability) heatmap with a Gaussian of the codec's sigma before the
            Taylor step, as in the DARK paper; more robust on noisy predictions, exact for Gaussian ones away
            from the border. Needs the spacing when ``sigma_unit="mm"``.
        centroid_radius: half-width, in heatmap pixels, of the ``"centroid"`` window (default ``ceil(4 sigma)``).
        eps: floor applied before taking the log of a heatmap.

    Example::

        codec = GaussianHeatmapCodec(sigma=2.0)
        heatmaps = codec.encode(points, spatial_size=(576, 736))      # (K, 576, 736)
        points, confidence = codec.decode(heatmaps)                   # (K, 2), (K,)
    """

    methods = ("dark", "centroid", "argmax")

    def __init__(
        self,
        sigma: float = 2.0,
        phi: float = 5.0,
        normalize: bool = False,
        sigma_unit: str = "pixel",
        stride: int = 1,
        decode_method: str = "dark",
        blur: bool = False,
        centroid_radius: int | None = None,
        eps: float = 1e-10,
    ) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a positive number, got {sigma!r}.")
        if not normalize and (not math.isfinite(phi) or phi <= 0):
            raise ValueError(f"phi must be a positive number, got {phi!r}.")
        if sigma_unit not in ("pixel", "mm"):
            raise ValueError(f"sigma_unit must be 'pixel' or 'mm', got {sigma_unit!r}.")
        if isinstance(stride, bool) or int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}.")
        if decode_method not in self.methods:
            raise ValueError(f"decode_method must be one of {self.methods}, got {decode_method!r}.")
        if centroid_radius is not None and (int(centroid_radius) != centroid_radius or centroid_radius < 1):
            raise ValueError(f"centroid_radius must be an integer >= 1, got {centroid_radius!r}.")
        self.sigma = float(sigma)
        self.phi = float(phi)
        self.normalize = bool(normalize)
        self.sigma_unit = sigma_unit
        self.stride = int(stride)
        self.decode_method = decode_method
        self.blur = bool(blur)
        self.centroid_radius = None if centroid_radius is None else int(centroid_radius)
        self.eps = float(eps)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sigma={self.sigma}, phi={self.phi}, normalize={self.normalize}, "
            f"sigma_unit={self.sigma_unit!r}, stride={self.stride}, decode_method={self.decode_method!r})"
        )

    @property
    def amplitude(self) -> float:
        """Peak value of a rendered Gaussian."""
        return 1.0 if self.normalize else self.phi / (self.sigma * math.sqrt(2.0 * math.pi))

    def heatmap_size(self, spatial_size: Sequence[int]) -> tuple[int, ...]:
        """Heatmap spatial size for a model input of ``spatial_size``: ``ceil(size / stride)`` per dim."""
        return tuple(-(-int(s) // self.stride) for s in spatial_size)

    def to_heatmap_coords(self, points: torch.Tensor) -> torch.Tensor:
        """Input-pixel coordinates to heatmap-pixel coordinates (pixel centres kept)."""
        return points if self.stride == 1 else (points + 0.5) / self.stride - 0.5

    def to_input_coords(self, points: torch.Tensor) -> torch.Tensor:
        """Heatmap-pixel coordinates to input-pixel coordinates (inverse of :meth:`to_heatmap_coords`)."""
        return points if self.stride == 1 else (points + 0.5) * self.stride - 0.5

    def heatmap_sigma(self, spacing=None, device=None) -> torch.Tensor:
        """Per-dim sigma in heatmap pixels, shape ``(..., 2)`` (``spacing`` needed when ``sigma_unit="mm"``)."""
        if self.sigma_unit == "pixel":
            return torch.full((2,), self.sigma / self.stride, dtype=torch.float64, device=device)
        if spacing is None:
            raise ValueError("this codec has sigma in mm: the sample's spacing (mm/pixel, shape (2,)) is required.")
        spacing = torch.as_tensor(spacing, dtype=torch.float64, device=device)
        if spacing.shape[-1:] != (2,) or not bool(torch.all(torch.isfinite(spacing) & (spacing > 0))):
            raise ValueError(f"spacing must be positive with shape (..., 2), got {spacing.tolist()}.")
        return self.sigma / spacing / self.stride

    def encode(self, points, spatial_size: Sequence[int], spacing=None) -> torch.Tensor:
        """Render heatmaps.

        Args:
            points: landmarks ``(..., K, 2)`` in input pixels; non-finite rows give empty channels.
            spatial_size: model input spatial size ``(dim0, dim1)``; the heatmap is ``heatmap_size(spatial_size)``.
            spacing: mm per input pixel, ``(2,)`` or ``(..., 2)``; used only when ``sigma_unit="mm"``.

        Returns:
            float32 tensor ``(..., K, h0, h1)`` on the points' device.
        """
        pts = torch.as_tensor(points).as_subclass(torch.Tensor)  # plain tensors: no MetaTensor bookkeeping
        device = pts.device
        pts = pts.to(torch.float64)
        if pts.ndim < 2 or pts.shape[-1] != 2:
            raise ValueError(f"points must have shape (..., K, 2), got {tuple(pts.shape)}.")
        if len(spatial_size) != 2:
            raise ValueError(f"spatial_size must have 2 entries (dim0, dim1), got {tuple(spatial_size)}.")
        size = self.heatmap_size(spatial_size)
        sigma = self.heatmap_sigma(spacing, device=device)  # (..., 2)
        sigma = sigma.unsqueeze(-2) if sigma.ndim > 1 else sigma  # broadcast over K
        centre = self.to_heatmap_coords(pts)
        valid = torch.isfinite(centre).all(-1, keepdim=True)
        centre = torch.where(valid, centre, torch.zeros_like(centre))
        # separable Gaussian: exp(-(a^2 + b^2) / 2) = exp(-a^2 / 2) * exp(-b^2 / 2), computed in float64 per axis
        profiles = []
        for dim, n in enumerate(size):
            grid = torch.arange(n, dtype=torch.float64, device=device)
            z = (grid - centre[..., dim : dim + 1]) / sigma[..., dim : dim + 1]
            profiles.append(torch.exp(-0.5 * z * z) * valid)
        g0 = (profiles[0] * self.amplitude).to(torch.float32)
        g1 = profiles[1].to(torch.float32)
        return g0.unsqueeze(-1) * g1.unsqueeze(-2)

    def decode(self, heatmaps, spacing=None, logits: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Locate the peak of each channel.

        Args:
            heatmaps: ``(..., K, h0, h1)`` heatmaps (or logits, see ``logits``), e.g. ``(B, K, H, W)``.
            spacing: mm per input pixel ``(2,)`` or ``(..., 2)``; only for ``sigma_unit="mm"`` with ``blur`` or
                ``"centroid"``.
            logits: the input holds logits whose sigmoid is the heatmap (a ``BCEWithLogits``-trained network).

        Returns:
            ``(points, confidence)``: float32 ``(..., K, 2)`` in input pixels and ``(..., K)``, on the input's device.
        """
        hm = torch.as_tensor(heatmaps).as_subclass(torch.Tensor)
        if hm.ndim < 3:
            raise ValueError(f"heatmaps must have shape (..., K, dim0, dim1), got {tuple(hm.shape)}.")
        hm = hm.float() if not torch.is_floating_point(hm) else hm
        lead, (n0, n1) = hm.shape[:-2], hm.shape[-2:]
        flat = hm.reshape(-1, n0 * n1)
        peak, index = flat.max(dim=-1)
        i0, i1 = index // n1, index % n1
        confidence = torch.sigmoid(peak) if logits else peak
        coords = torch.stack([i0, i1], dim=-1).to(torch.float64)
        if self.decode_method != "argmax":
            sigma = None
            if self.decode_method == "centroid" or self.blur:
                sigma = self.heatmap_sigma(spacing, device=hm.device).expand(*lead[:-1], 2)
                sigma = sigma.reshape(-1, 2).repeat_interleave(lead[-1] if lead else 1, dim=0)
            if self.decode_method == "dark":
                coords = coords + self._dark_offset(flat, i0, i1, (n0, n1), logits, sigma)
            else:
                coords = coords + self._centroid_offset(flat, i0, i1, (n0, n1), logits, sigma)
        points = self.to_input_coords(coords).to(torch.float32).reshape(*lead, 2)
        return points, confidence.to(torch.float32).reshape(lead)

    # -- decoding helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _gather(flat: torch.Tensor, i0, i1, d0: torch.Tensor, d1: torch.Tensor, shape) -> tuple[torch.Tensor, ...]:
        """Values at ``(i0 + d0, i1 + d1)`` (offsets ``(W,)``) per row of ``flat``, clamped; and an inside mask."""
        j0, j1 = i0[:, None] + d0[None], i1[:, None] + d1[None]
        inside = (j0 >= 0) & (j0 < shape[0]) & (j1 >= 0) & (j1 < shape[1])
        j = j0.clamp(0, shape[0] - 1) * shape[1] + j1.clamp(0, shape[1] - 1)
        return torch.gather(flat, 1, j), inside

    def _log_heatmap(self, values: torch.Tensor, logits: bool) -> torch.Tensor:
        if logits:
            return F.logsigmoid(values.to(torch.float64))
        return torch.log(values.to(torch.float64).clamp_min(self.eps))

    def _dark_offset(self, flat, i0, i1, shape, logits: bool, sigma) -> torch.Tensor:
        # The 3x3 stencil is centred on the argmax, shifted inside the map at a border: the log of a Gaussian is a
        # quadratic, so the Newton step from the shifted centre still lands on the peak.
        c0 = i0.clamp(1, shape[0] - 2) if shape[0] >= 3 else i0
        c1 = i1.clamp(1, shape[1] - 2) if shape[1] >= 3 else i1
        d = torch.tensor([-1, 0, 1], device=flat.device)
        d0, d1 = torch.meshgrid(d, d, indexing="ij")
        if self.blur:
            values, logits = self._blurred_neighbourhood(flat, c0, c1, shape, logits, sigma), False
        else:
            values, _ = self._gather(flat, c0, c1, d0.reshape(-1), d1.reshape(-1), shape)
        lg = self._log_heatmap(values, logits).reshape(-1, 3, 3)
        g0 = 0.5 * (lg[:, 2, 1] - lg[:, 0, 1])
        g1 = 0.5 * (lg[:, 1, 2] - lg[:, 1, 0])
        h00 = lg[:, 2, 1] - 2 * lg[:, 1, 1] + lg[:, 0, 1]
        h11 = lg[:, 1, 2] - 2 * lg[:, 1, 1] + lg[:, 1, 0]
        h01 = 0.25 * (lg[:, 2, 2] - lg[:, 2, 0] - lg[:, 0, 2] + lg[:, 0, 0])
        # a dim shorter than 3 pixels is not refined: zero gradient, unit curvature, no coupling
        ok0, ok1 = shape[0] >= 3, shape[1] >= 3
        g0, h00 = (g0, h00) if ok0 else (torch.zeros_like(g0), -torch.ones_like(h00))
        g1, h11 = (g1, h11) if ok1 else (torch.zeros_like(g1), -torch.ones_like(h11))
        h01 = h01 if ok0 and ok1 else torch.zeros_like(h01)
        det = h00 * h11 - h01 * h01
        maximum = (det > 0) & (h00 < 0)  # negative definite Hessian: a true local maximum
        safe = torch.where(maximum, det, torch.ones_like(det))
        o0 = (c0 - i0) - (h11 * g0 - h01 * g1) / safe
        o1 = (c1 - i1) - (h00 * g1 - h01 * g0) / safe
        offset = torch.stack([o0, o1], dim=-1)
        offset = torch.where(maximum[:, None] & torch.isfinite(offset), offset, torch.zeros_like(offset))
        return offset.clamp(-1.0, 1.0)

    def _blurred_neighbourhood(self, flat, i0, i1, shape, logits: bool, sigma) -> torch.Tensor:
        """The 3x3 neighbourhood of ``(i0, i1)`` in the Gaussian-smoothed (probability) heatmap, ``(M, 9)``.

        Only the ``(2r + 3)^2`` patch that the 3x3 result depends on is read; clamped indices make it the same as
        smoothing the whole map with replicate padding, at a fraction of the cost.
        """
        r = int(math.ceil(3.0 * float(sigma.max())))
        d = torch.arange(-r - 1, r + 2, device=flat.device)
        d0, d1 = torch.meshgrid(d, d, indexing="ij")
        patch, _ = self._gather(flat, i0, i1, d0.reshape(-1), d1.reshape(-1), shape)
        patch = (torch.sigmoid(patch) if logits else patch).to(torch.float64).reshape(-1, 2 * r + 3, 2 * r + 3)
        t = torch.arange(-r, r + 1, dtype=torch.float64, device=flat.device)
        kernels = torch.exp(-0.5 * (t[None, None] / sigma[:, :, None]) ** 2)  # (M, 2, 2r+1)
        kernels = kernels / kernels.sum(-1, keepdim=True)
        out = torch.einsum("mabt,mt->mab", patch.unfold(1, 2 * r + 1, 1), kernels[:, 0])  # (M, 3, 2r+3)
        out = torch.einsum("mabt,mt->mab", out.unfold(2, 2 * r + 1, 1), kernels[:, 1])  # (M, 3, 3)
        return out.reshape(-1, 9)

    def _centroid_offset(self, flat, i0, i1, shape, logits: bool, sigma) -> torch.Tensor:
        radius = self.centroid_radius or max(1, int(math.ceil(4.0 * float(sigma.max()))))
        d = torch.arange(-radius, radius + 1, device=flat.device)
        d0, d1 = torch.meshgrid(d, d, indexing="ij")
        d0, d1 = d0.reshape(-1), d1.reshape(-1)
        values, inside = self._gather(flat, i0, i1, d0, d1, shape)
        w = (torch.sigmoid(values) if logits else values).to(torch.float64).clamp_min(0.0) * inside
        total = w.sum(-1, keepdim=True)
        offset = torch.stack([(w * d0).sum(-1), (w * d1).sum(-1)], dim=-1) / total.clamp_min(1e-300)
        return torch.where(total > 0, offset, torch.zeros_like(offset))
