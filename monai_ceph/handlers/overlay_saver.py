from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping

import numpy as np

from monai.transforms import LoadImage
from monai.utils import convert_to_numpy, optional_import

from monai_ceph.data import LandmarkSet, RadiographReader, get_landmark_set
from monai_ceph.data.atomic import atomic_write_bytes

from .utils import ItemHandler, item_id, item_points, item_source_filename, landmark_labels

Image, _ = optional_import("PIL.Image")
ImageDraw, _ = optional_import("PIL.ImageDraw")
ImageFont, _ = optional_import("PIL.ImageFont")

__all__ = ["OverlaySaver", "render_overlay"]

PRED_COLOR = (255, 48, 48)
GT_COLOR = (48, 220, 48)
LINE_COLOR = (255, 220, 0)


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
):
    """Draw predicted (red) and ground-truth (green) landmarks, joined by yellow lines, on the image.

    Args:
        image: ``(C, x, y)`` source image as MONAI's ``LoadImage`` gives it (C = 1 grey or >= 3 colour).
        pred: ``(N, 2)`` predicted landmarks, source pixels (x, y); NaN rows are not drawn.
        gt: ``(N, 2)`` ground truth, or None.
        labels: text drawn beside each predicted landmark, or None.
        scale: output size factor: the PNG is ``round(x * scale)`` wide and ``round(y * scale)`` high.
        radius: marker radius in output pixels; default 0.6 % of the larger output side (at least 2).

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
        if g is not None and has_p:
            draw.line((*to_canvas(g), *to_canvas(p)), fill=LINE_COLOR, width=max(1, round(r / 4)))
        if g is not None:
            dot(g, GT_COLOR)
        if has_p:
            dot(p, PRED_COLOR)
            if labels is not None:
                x, y = to_canvas(p)
                draw.text((x + 1.5 * r, y - 1.5 * r), labels[i], fill=PRED_COLOR, font=font)
    return canvas


class OverlaySaver(ItemHandler):
    """
    Event handler triggered on completing every iteration: saves ``<output_dir>/<id>.png``, the source image with
    the predicted landmarks (red), the ground truth (green) and the line between each pair (yellow).

    Reads, from each decollated output item, ``pred_key`` (``(N, 2)`` source pixels), optionally ``label_key``
    (ground truth, source pixels) and ``id_key`` (else the stem of the image's source file), and the source image:
    ``item[source_image_key]`` when that key is given (it must be the source-space ``(C, x, y)`` image), otherwise
    the file named by the ``image_key`` meta ``filename_or_obj``, re-read with MONAI's ``LoadImage`` (the image in
    the output is usually resized for the network, so it is not used). Every rank saves its own images.

    Args:
        output_dir: folder for the PNG files; created when missing.
        landmark_set: names to draw beside the predictions when ``show_names``; None gives ``L1..LN``.
        show_names: whether to draw the landmark abbreviations.
        scale: output size factor (e.g. 0.5 for half-size overviews).
        pred_key, label_key, id_key, image_key: keys of the output items; ``label_key`` may be absent (or None).
        source_image_key: key of a source-space image in the output items, or None to re-read the file.
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
        overlay = render_overlay(self.source_image(item), pred, gt, labels=labels, scale=self.scale)
        path = os.path.join(self.output_dir, f"{item_id(item, self.id_key, self.image_key)}.png")
        png = io.BytesIO()
        overlay.save(png, format="PNG")
        atomic_write_bytes(path, png.getvalue())
        self.logger.debug(f"landmark overlay saved to {path}.")
        return path
