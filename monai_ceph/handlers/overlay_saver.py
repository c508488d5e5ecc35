from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from monai.transforms import LoadImage
from monai.utils import convert_to_numpy, optional_import

from monai_ceph.data import LandmarkSet, RadiographReader, get_landmark_set
from monai_ceph.data.atomic import atomic_write_bytes

from monai_ceph.shape.uncertainty import chi2_2_quantile

from .provenance import model_description, result_warnings
from .utils import ItemHandler, item_covariance, item_id, item_points, item_source_filename, landmark_labels

Image, _ = optional_import("PIL.Image")
ImageDraw, _ = optional_import("PIL.ImageDraw")
ImageFont, _ = optional_import("PIL.ImageFont")

__all__ = ["OverlaySaver", "render_overlay", "ellipse_outline"]

PRED_COLOR = (255, 48, 48)
GT_COLOR = (48, 220, 48)
LINE_COLOR = (255, 220, 0)
ELLIPSE_COLOR = (0, 200, 255)
FLAGGED_COLOR = (255, 0, 255)
NOTE_COLOR = (230, 230, 230)
WARNING_COLOR = (255, 140, 0)


def ellipse_outline(centre: np.ndarray, cov: np.ndarray, level: float = 0.95, n: int = 48) -> np.ndarray | None:
    """``(n, 2)`` points of the ``level`` ellipse ``e^T cov^-1 e = chi2_2(level)`` around ``centre`` (the units of
    ``cov``), or None when ``cov`` is not finite and positive definite."""
    if not (np.isfinite(cov).all() and np.isfinite(centre).all()):
        return None
    try:
        root = np.linalg.cholesky(cov * chi2_2_quantile(level))
    except np.linalg.LinAlgError:
        return None
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return centre + np.stack([np.cos(t), np.sin(t)], -1) @ root.T


def _to_display(image: np.ndarray) -> np.ndarray:
    """``(C, x, y)`` image -> ``(y, x, 3)`` uint8 for display, intensities stretched to the 0.5-99.5 percentiles."""
    if image.ndim != 3:
        raise ValueError(f"expected a channel-first 2-D image (C, x, y), got shape {image.shape}.")
    channels = image[:3] if image.shape[0] >= 3 else image[:1].repeat(3, axis=0)
    lo, hi = np.nanpercentile(channels[:, ::4, ::4], (0.5, 99.5))  # a subsample is plenty for the stretch
    rgb = np.transpose(channels, (2, 1, 0)).astype(np.float32)  # (C, x, y) -> (y, x, C)
    rgb = np.clip((rgb - lo) * (255.0 / (hi - lo if hi > lo else 1.0)), 0.0, 255.0)
    return np.nan_to_num(rgb).round().astype(np.uint8)


def render_overlay(
    image: np.ndarray,
    pred: np.ndarray,
    gt: np.ndarray | None = None,
    labels: tuple[str, ...] | None = None,
    scale: float = 1.0,
    radius: float | None = None,
    covariances: np.ndarray | None = None,
    flagged: np.ndarray | None = None,
    level: float = 0.95,
    legend: bool = False,
    ellipse_label: str | None = None,
    notes: Sequence[tuple[str, tuple[int, int, int]]] = (),
):
    """Draw predicted (red) and ground-truth (green) landmarks, joined by yellow lines, on the image; with
    ``covariances`` the ``level`` ellipse of each prediction (cyan), with ``flagged`` those points' markers in
    magenta, with ``legend`` a key in the top-left corner.

    Args:
        image: ``(C, x, y)`` source image as MONAI's ``LoadImage`` gives it (C = 1 grey or >= 3 colour).
        pred: ``(N, 2)`` predicted landmarks, source pixels (x, y); NaN rows are not drawn.
        gt: ``(N, 2)`` ground truth, or None.
        labels: text drawn beside each predicted landmark, or None.
        scale: output size factor: the PNG is ``round(x * scale)`` wide and ``round(y * scale)`` high.
        radius: marker radius in output pixels; default 0.6 % of the larger output side (at least 2).
        covariances: ``(N, 2, 2)`` covariances of the predictions in source pixels^2, or None.
        flagged: ``(N,)`` bool, points the shape model flagged, or None.
        level: the ellipses' probability content.
        legend: draw a key of the colours.
        ellipse_label: the ellipse's entry in the key (default ``"<level> % ellipse"``).
        notes: lines of text and their colours drawn in the key box (with or without ``legend``): which model
            made the points, and warnings.

    Returns:
        a ``PIL.Image.Image`` (RGB).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    canvas = Image.fromarray(_to_display(image))
    size = (max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale)))
    if size != canvas.size:
        canvas = canvas.resize(size, Image.Resampling.BILINEAR)
    r = radius if radius is not None else max(2.0, 0.006 * max(size))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, round(2.5 * r))) if labels is not None else None

    def to_canvas(p):  # pixel centres: source x -> (x + 0.5) * scale - 0.5 in the output
        return (p[0] + 0.5) * scale - 0.5, (p[1] + 0.5) * scale - 0.5

    def dot(p, color):
        x, y = to_canvas(p)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=color, width=max(1, round(r / 3)))

    for i, p in enumerate(pred):
        g = None if gt is None or np.isnan(gt[i]).any() else gt[i]
        has_p = not np.isnan(p).any()
        outline = None if covariances is None or not has_p else ellipse_outline(p, covariances[i], level)
        if outline is not None:
            draw.polygon([to_canvas(q) for q in outline], outline=ELLIPSE_COLOR, width=max(1, round(r / 4)))
        if g is not None and has_p:
            draw.line((*to_canvas(g), *to_canvas(p)), fill=LINE_COLOR, width=max(1, round(r / 4)))
        if g is not None:
            dot(g, GT_COLOR)
        if has_p:
            color = FLAGGED_COLOR if flagged is not None and flagged[i] else PRED_COLOR
            dot(p, color)
            if labels is not None:
                x, y = to_canvas(p)
                draw.text((x + 1.5 * r, y - 1.5 * r), labels[i], fill=color, font=font)
    entries: list[tuple[str, tuple[int, int, int]]] = []
    if legend:
        entries = [("prediction", PRED_COLOR)]
        if gt is not None:
            entries += [("ground truth", GT_COLOR), ("error", LINE_COLOR)]
        if covariances is not None:
            entries.append((ellipse_label or f"{100 * level:g} % ellipse", ELLIPSE_COLOR))
        if flagged is not None:
            entries.append(("flagged by the shape model", FLAGGED_COLOR))
    entries += list(notes)
    if entries:
        _draw_legend(draw, entries, max(10, round(2.5 * r)))
    return canvas


def _draw_legend(draw, entries: list[tuple[str, tuple[int, int, int]]], size: int) -> None:
    """A key in the top-left corner: a colour swatch and its text per entry, on a dark box."""
    font = ImageFont.load_default(size=size)
    pad, line = max(2, size // 3), round(1.3 * size)
    width = max(draw.textlength(text, font=font) for text, _ in entries) + 2 * size + 3 * pad
    draw.rectangle((0, 0, width, 2 * pad + line * len(entries)), fill=(0, 0, 0))
    for j, (text, color) in enumerate(entries):
        y = pad + j * line
        draw.rectangle((pad, y + size // 4, pad + size, y + size), fill=color)
        draw.text((2 * pad + size, y), text, fill=color, font=font)


class OverlaySaver(ItemHandler):
    """
    Event handler triggered on completing every iteration: saves ``<output_dir>/<id>.png``, the source image with
    the predicted landmarks (red), the ground truth (green) and the line between each pair (yellow).

    Reads, from each decollated output item, ``pred_key`` (``(N, 2)`` source pixels), optionally ``label_key``
    (ground truth, source pixels) and ``id_key`` (else the stem of the image's source file), and the source image:
    ``item[source_image_key]`` when that key is given (it must be the source-space ``(C, x, y)`` image), otherwise
    the file named by the ``image_key`` meta ``filename_or_obj``, re-read with MONAI's ``LoadImage`` (the image in
    the output is usually resized for the network, so it is not used). Every rank saves its own images.

    Items with a predicted covariance ``cov_key`` (source mm^2, e.g. from
    :class:`~monai_ceph.shape.LandmarkUncertaintyd`) get the ``level`` ellipse of each point (cyan, mapped to pixels with the item's ``spacing_key``), marked
    calibrated or uncalibrated in the legend (``calibrated_key``); points flagged by the shape refinement
    (``flagged_key``) are drawn in magenta.

    Args:
        output_dir: folder for the PNG files; created when missing.
        landmark_set: names to draw beside the predictions when ``show_names``; None gives ``L1..LN``.
        show_names: whether to draw the landmark abbreviations.
        legend: whether to draw a key of the colours.
        scale: output size factor (e.g. 0.5 for half-size overviews).
        pred_key, label_key, id_key, image_key: keys of the output items; ``label_key`` may be absent (or None).
        source_image_key: key of a source-space image in the output items, or None to re-read the file.
        cov_key, spacing_key, calibrated_key, flagged_key: the uncertainty and shape keys (absent or None: not drawn).
        level: the ellipses' probability content.
        model: which model made the points (:func:`~monai_ceph.handlers.provenance.model_provenance`): when
            given, the key names it and shows the result's warnings (a phantom-demo model, an implausible shape
            from ``plausibility_key`` / ``unrefined_key``).
        pipeline: the steps that made the points (the bundle's ``pipeline``), shown in the key.
        reader: reader passed to ``LoadImage`` when re-reading; None: :py:class:`monai_ceph.data.RadiographReader`,
            the reader of the bundles' pre-processing, so DICOM loads as ``(1, x, y)`` like the other formats.
        output_transform: maps ``engine.state.output`` to the list of per-image dicts (or a batch dict).
        name: identifier of logging.logger to use, defaulting to ``engine.logger``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        landmark_set: str | LandmarkSet | None = "isbi2015",
        show_names: bool = False,
        scale: float = 1.0,
        pred_key: str = "pred_landmarks",
        label_key: str | None = "landmarks",
        id_key: str | None = "id",
        image_key: str = "image",
        source_image_key: str | None = None,
        reader=None,
        legend: bool = False,
        cov_key: str | None = "cov_mm",
        spacing_key: str = "spacing",
        calibrated_key: str | None = "uncertainty_calibrated",
        flagged_key: str | None = "shape_flagged",
        level: float = 0.95,
        model: Mapping | None = None,
        pipeline: Sequence[str] | None = None,
        plausibility_key: str = "shape_plausibility",
        unrefined_key: str = "unrefined_pred_landmarks",
        output_transform: Callable = lambda x: x,
        name: str | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}.")
        self.output_dir = output_dir
        self.landmark_set = None if landmark_set is None else get_landmark_set(landmark_set)
        self.show_names = show_names
        self.scale = scale
        self.pred_key, self.label_key, self.id_key, self.image_key = pred_key, label_key, id_key, image_key
        self.source_image_key = source_image_key
        self.reader = reader
        self.legend = legend
        self.cov_key, self.spacing_key, self.calibrated_key = cov_key, spacing_key, calibrated_key
        self.flagged_key, self.level = flagged_key, level
        self.model = None if model is None else dict(model)
        self.pipeline = None if pipeline is None else list(pipeline)
        self.plausibility_key, self.unrefined_key = plausibility_key, unrefined_key
        self._loader: LoadImage | None = None  # created on the first re-read
        super().__init__(output_transform, name)

    def handle(self, item: Mapping):
        return self.save(item)

    def source_image(self, item: Mapping) -> np.ndarray:
        """The ``(C, x, y)`` source image of an output item (see the class docstring)."""
        if self.source_image_key is not None:
            if item.get(self.source_image_key) is None:
                raise KeyError(f"engine output item has no source image {self.source_image_key!r}.")
            return np.asarray(convert_to_numpy(item[self.source_image_key]))
        filename = item_source_filename(item, self.image_key)
        if filename is None or not os.path.isfile(filename):
            raise FileNotFoundError(
                f"cannot re-read the source image: {self.image_key!r} meta filename_or_obj is {filename!r}; "
                "set source_image_key to take the image from the output instead."
            )
        if self._loader is None:
            reader = RadiographReader() if self.reader is None else self.reader
            self._loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)
        return np.asarray(convert_to_numpy(self._loader(filename)))

    def save(self, item: Mapping) -> str:
        """Save the overlay of one decollated output item; returns the PNG path."""
        pred = item_points(item, self.pred_key)
        gt = item_points(item, self.label_key) if self.label_key and item.get(self.label_key) is not None else None
        labels = landmark_labels(self.landmark_set, len(pred))[0] if self.show_names else None
        has = lambda key: key is not None and item.get(key) is not None  # noqa: E731
        cov, ellipse_label = None, None
        if has(self.cov_key):
            spacing = item_points(item, self.spacing_key, ndim=1)
            cov = item_covariance(item, self.cov_key, len(pred)) / np.outer(spacing, spacing)  # mm^2 -> pixels^2
            calibrated = item.get(self.calibrated_key) if self.calibrated_key is not None else None
            state = "" if calibrated is None else (" (calibrated)" if calibrated else " (uncalibrated)")
            ellipse_label = f"{100 * self.level:g} % ellipse{state}"
        flagged = np.asarray(convert_to_numpy(item[self.flagged_key]), dtype=bool) if has(self.flagged_key) else None
        notes = []
        if self.model is not None:
            notes.append((model_description(self.model), NOTE_COLOR))
        if self.pipeline is not None:
            notes.append((" -> ".join(self.pipeline), NOTE_COLOR))
        if self.model is not None:
            warnings = result_warnings(self.model, item.get(self.plausibility_key), item.get(self.unrefined_key))
            notes += [(f"WARNING: {w}", WARNING_COLOR) for w in warnings]
        overlay = render_overlay(self.source_image(item), pred, gt, labels=labels, scale=self.scale, covariances=cov,
                                 flagged=flagged, level=self.level, legend=self.legend, ellipse_label=ellipse_label,
                                 notes=notes)
        path = os.path.join(self.output_dir, f"{item_id(item, self.id_key, self.image_key)}.png")
        png = io.BytesIO()
        overlay.save(png, format="PNG")
        atomic_write_bytes(path, png.getvalue())
        self.logger.debug(f"landmark overlay saved to {path}.")
        return path
