"""Which way does the radiograph face? Detect a mirrored or rotated input, run the network upright, map back exactly.

The networks are trained on radiographs whose profile faces right (the face at larger x, as in ISBI 2015). A
mirrored radiograph (profile facing left) or one rotated by 90, 180 or 270 degrees gives confident nonsense. The
:class:`OrientationInferer` runs the global network on the input turned upright by each candidate orientation,
maps each candidate's heatmaps back onto the input's own grid, and keeps the candidate whose heatmaps are the most
confident (mean over landmarks of the peak probability inside the source image).

Orientation names say what happened to an upright radiograph to give the input (display: rows are y, columns x):
``"as given"``, ``"mirrored"`` (flipped left-right: ``x -> W - 1 - x``), ``"rotated 90"`` / ``"rotated 180"`` /
``"rotated 270"`` (turned counter-clockwise by that many degrees as displayed). :func:`upright` turns a tensor
``(..., x, y)`` upright, :func:`from_upright` undoes it, and :func:`upright_matrix` is the exact pixel map (pixel
centres at integers): both are permutations of the pixel grid, so nothing is interpolated and points map back to
within rounding (:mod:`monai_ceph.transforms.spatial.orientation`, re-exported here). Heatmaps at output stride
``s`` map exactly when the input size is a multiple of ``s``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from monai.inferers import Inferer

from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.landmarks.inside import mask_outside_source
from monai_ceph.transforms.spatial.orientation import (
    AS_GIVEN,
    ORIENTATIONS,
    check_orientation,
    from_upright,
    upright,
    upright_matrix,
)

__all__ = [
    "AS_GIVEN",
    "ORIENTATIONS",
    "OrientationInferer",
    "UnexpectedOrientationError",
    "from_upright",
    "orientation_warning",
    "upright",
    "upright_matrix",
]

class UnexpectedOrientationError(ValueError):
    """An input whose detected orientation the inferer was told to refuse rather than correct."""


def orientation_warning(name: str | None) -> str | None:
    """The line a result carries when its radiograph was not upright as given (``None`` for ``"as given"`` or an
    unchecked orientation)."""
    if name is None or name == AS_GIVEN:
        return None
    turned = "flipped left-right" if name == "mirrored" else f"turned back by {name.split()[-1]} degrees"
    return (
        f"the radiograph looked {name}: the landmarks were detected on it {turned} and mapped back onto the image "
        "as given; check the image's orientation"
    )


def _filenames(inputs: Any, n: int) -> list[str]:
    meta = getattr(inputs, "meta", None) or {}
    names = meta.get("filename_or_obj")
    if isinstance(names, (list, tuple)) and len(names) == n:
        return [str(f) for f in names]
    return [str(names) if names is not None else f"image {i}" for i in range(n)]


class OrientationInferer(Inferer):
    """MONAI Inferer that runs a landmark network on the input turned upright, detecting which way it faces.

    For each candidate in ``orientations`` the network sees the input turned upright by it (:func:`upright`); its
    heatmaps are turned back onto the input's grid (:func:`from_upright`, exact), decoded inside the source image
    and scored by the mean peak probability over landmarks. The best candidate wins; ``"as given"`` keeps the
    input unless another candidate scores more than ``margin`` above it.

    Returns ``{"pred": heatmaps, "orientation": names}``: ``pred`` ``(B, K, *heatmap)`` as a plain
    :class:`~monai.inferers.SimpleInferer` would return for the input itself (logits if ``logits``), from the
    winning orientation, and ``orientation`` the list of the ``B`` names. The bundle's post-processing moves
    ``orientation`` into the item and ``pred`` back in place (``validate#orientation_outputs``).
    :meth:`decide` is the same pass for a caller that wants the names, the scores and the heatmaps
    (:class:`~monai_ceph.inferers.TwoStageInferer` turns its local image upright by the same decision).

    Args:
        codec: the global codec (decodes the candidates' heatmaps; its stride must divide the input size).
        orientations: the candidates, names of :data:`ORIENTATIONS`; ``"as given"`` is always one of them.
        logits: the network outputs logits.
        margin: how much higher (in mean peak probability) another orientation must score than ``"as given"``.
        refuse: orientations to refuse instead of correcting: an input detected in one raises
            :class:`UnexpectedOrientationError` naming its file, its orientation and the scores.
        inferer: how the network runs on the winning orientation (e.g. a
            :class:`~monai_ceph.inferers.TestTimeAugmentationInferer`); default: the candidate's own pass is kept.
    """

    def __init__(
        self,
        codec: GaussianHeatmapCodec | None = None,
        orientations: Sequence[str] = (AS_GIVEN, "mirrored"),
        logits: bool = True,
        margin: float = 0.0,
        refuse: Sequence[str] = (),
        inferer: Inferer | None = None,
    ) -> None:
        super().__init__()
        for name in (*orientations, *refuse):
            check_orientation(name)
        self.orientations = tuple(dict.fromkeys([AS_GIVEN, *orientations]))
        self.refuse = tuple(refuse)
        if AS_GIVEN in self.refuse:
            raise ValueError(f"{AS_GIVEN!r} cannot be refused.")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}.")
        self.codec = codec if codec is not None else GaussianHeatmapCodec()
        self.logits = logits
        self.margin = float(margin)
        self.inferer = inferer

    def _check_stride(self, inputs: torch.Tensor) -> None:
        stride = self.codec.stride
        if any(int(s) % stride for s in inputs.shape[-2:]):
            raise ValueError(
                f"the input size {tuple(inputs.shape[-2:])} is not a multiple of the codec's stride {stride}: "
                "its heatmaps cannot be turned back exactly."
            )

    def _pass(self, x: torch.Tensor, network: Callable, inferer: Inferer | None, *args, **kwargs) -> torch.Tensor:
        out = inferer(x, network, *args, **kwargs) if inferer is not None else network(x, *args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{type(self).__name__} needs heatmap tensors; the network returned {type(out).__name__}.")
        return out.as_subclass(torch.Tensor) if hasattr(out, "as_tensor") else out

    def decide(
        self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any
    ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """``(names, scores, heatmaps)``: the winning orientation of each of the ``B`` inputs, the ``(B, O)``
        scores of ``self.orientations`` and the winner's ``(B, K, *heatmap)`` heatmaps on the input's grid.

        Raises:
            UnexpectedOrientationError: an input's winner is in ``refuse``.
        """
        self._check_stride(inputs)
        x = inputs.as_tensor() if hasattr(inputs, "as_tensor") else torch.as_tensor(inputs)
        scores, maps = [], []
        for name in self.orientations:
            heatmaps = from_upright(self._pass(upright(x, name), network, None, *args, **kwargs), name)
            inside = mask_outside_source(heatmaps, inputs, self.codec.stride)
            scores.append(self.codec.decode(inside.detach(), logits=self.logits)[1].float().mean(-1))  # (B,)
            maps.append(heatmaps)
        score = torch.stack(scores, -1).cpu()  # (B, O)
        best = score.argmax(-1)
        keep = score[:, 0] + self.margin >= score.gather(1, best[:, None])[:, 0]  # "as given" unless clearly beaten
        best = torch.where(keep, torch.zeros_like(best), best)
        names = [self.orientations[int(i)] for i in best]
        refused = [i for i, name in enumerate(names) if name in self.refuse]
        if refused:
            files = _filenames(inputs, len(names))
            i = refused[0]
            detail = ", ".join(f"{n} {float(s):.3f}" for n, s in zip(self.orientations, score[i]))
            raise UnexpectedOrientationError(
                f"{files[i]}: the radiograph looks {names[i]} (mean landmark confidence: {detail}); the model "
                "expects a lateral cephalogram with the profile facing right, upright. Turn the image upright "
                "and run it again."
            )
        heatmaps = torch.stack([maps[int(i)][b] for b, i in enumerate(best)])
        if self.inferer is not None:  # the final pass through the given inferer, on the winning orientation
            heatmaps = torch.stack(
                [
                    from_upright(self._pass(upright(x[b : b + 1], n), network, self.inferer, *args, **kwargs), n)[0]
                    for b, n in enumerate(names)
                ]
            )
        return names, score, heatmaps

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> dict[str, Any]:
        names, _, heatmaps = self.decide(inputs, network, *args, **kwargs)
        return {"pred": heatmaps, "orientation": names}
