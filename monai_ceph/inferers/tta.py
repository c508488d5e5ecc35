"""Test-time augmentation for heatmap landmark detectors, as a MONAI :class:`~monai.inferers.Inferer`.

Each variant rescales the batch about the image centre (``scales``: 1.1 magnifies the anatomy by 10 %) and/or
applies a gamma curve to its intensities (``gammas``); the network's heatmaps of each variant are resampled back
onto the input grid by the exact inverse of the variant's geometry and merged (mean of the sigmoid
probabilities, returned as logits when ``logits=True``). The output has the shape and meaning of a plain
:class:`~monai.inferers.SimpleInferer`'s, so the decoding and ``LandmarksToSourced`` that follow are unchanged.

Geometry: with ``align_corners=False`` a zoom by ``s`` about the centre maps pixel ``i`` of an axis of ``n``
pixels to ``c + s (i - c)``, ``c = (n - 1) / 2``; a heatmap at output stride ``r`` has the same centre in input
pixels, so the inverse zoom ``1 / s`` on the heatmap grid undoes it exactly. The per-variant heatmaps
(:meth:`TestTimeAugmentationInferer.variants`) show the spread of the prediction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from monai.inferers import Inferer

__all__ = ["TestTimeAugmentationInferer", "TTAInferer", "zoom_about_centre"]


def zoom_about_centre(x: torch.Tensor, scale: float, mode: str = "bilinear") -> torch.Tensor:
    """Magnify the content of a batch ``(B, C, *spatial)`` by ``scale`` about the centre; outside is 0."""
    if scale == 1.0:
        return x
    dims = x.ndim - 2
    theta = torch.zeros(x.shape[0], dims, dims + 1, dtype=x.dtype, device=x.device)
    theta[:, range(dims), range(dims)] = 1.0 / scale
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


class TestTimeAugmentationInferer(Inferer):
    """Merge a network's heatmaps over scale and intensity variants of the input, mapped back exactly.

    Args:
        scales: zoom factors of the variants (1.0: the input as it is); every pair with ``gammas`` is a variant.
        gammas: gamma curves ``x ** g`` of the variants on inputs scaled to ``[0, 1]`` by ``value_range``.
        value_range: the input intensity range ``(low, high)`` (the bundle's preprocessing gives ``[0, 1]``).
        logits: the network outputs logits (merged as probabilities, returned as logits); ``False``: outputs are
            probabilities or heatmaps and are averaged as they are.
        mode: interpolation of the input zooms.
        heatmap_mode: interpolation of the heatmaps mapped back (bicubic keeps a decoded sub-pixel peak within
            about 0.01 px of its position, bilinear within about 0.05 px; the geometry itself is exact either way).
        inferer: the inferer each variant runs through (default: calls the network directly).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        scales: Sequence[float] = (0.9, 1.0, 1.1),
        gammas: Sequence[float] = (1.0,),
        value_range: Sequence[float] = (0.0, 1.0),
        logits: bool = True,
        mode: str = "bilinear",
        heatmap_mode: str = "bicubic",
        inferer: Inferer | None = None,
    ) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.gammas = tuple(float(g) for g in gammas)
        if not self.scales or not self.gammas or min(self.scales + self.gammas) <= 0:
            raise ValueError(f"scales and gammas must be non-empty and > 0, got {scales!r}, {gammas!r}.")
        self.value_range = (float(value_range[0]), float(value_range[1]))
        if not self.value_range[1] > self.value_range[0]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}.")
        self.logits = logits
        self.mode = mode
        self.heatmap_mode = heatmap_mode
        self.inferer = inferer

    def _gamma(self, x: torch.Tensor, gamma: float) -> torch.Tensor:
        if gamma == 1.0:
            return x
        low, high = self.value_range
        unit = ((x - low) / (high - low)).clamp(0.0, 1.0)
        return unit**gamma * (high - low) + low

    def _run(self, x: torch.Tensor, network: Callable, *args, **kwargs) -> torch.Tensor:
        out = self.inferer(x, network, *args, **kwargs) if self.inferer is not None else network(x, *args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{type(self).__name__} merges heatmap tensors; the network returned {type(out).__name__}.")
        return torch.sigmoid(out.float()) if self.logits else out.float()

    def variants(self, inputs: torch.Tensor, network: Callable, *args, **kwargs) -> torch.Tensor:
        """Per-variant heatmaps on the input grid, ``(V, B, C, *heatmap spatial)``, as probabilities if ``logits``."""
        x = inputs.as_tensor() if hasattr(inputs, "as_tensor") else torch.as_tensor(inputs)
        outputs = []
        for scale, gamma in itertools.product(self.scales, self.gammas):
            variant = zoom_about_centre(self._gamma(x, gamma), scale, self.mode)
            heatmap = self._run(variant.to(x.dtype), network, *args, **kwargs)
            outputs.append(zoom_about_centre(heatmap, 1.0 / scale, self.heatmap_mode))
        return torch.stack(outputs)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args, **kwargs) -> torch.Tensor:
        """The merged heatmaps ``(B, C, *spatial)``: logits if ``logits`` (as the network's), else the mean."""
        merged = self.variants(inputs, network, *args, **kwargs).mean(0)
        if not self.logits:
            return merged
        eps = torch.finfo(merged.dtype).eps
        return torch.logit(merged.clamp(eps, 1.0 - eps))


TTAInferer = TestTimeAugmentationInferer
