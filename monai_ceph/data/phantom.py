"""Synthetic skull-like radiographs with known sub-pixel landmarks: the embedded default dataset and exactness tests.

A phantom is a ``(1, W, H)`` float32 image in ``[0, 1]`` (MONAI's ``(C, dim0=x, dim1=y)`` order) and its
``(N, 2)`` landmarks in pixel-index ``(x, y)``. By default the 19 ISBI 2015 landmarks are placed at their mean
position (:data:`ISBI2015_TEMPLATE`) scaled to the image, moved by a seeded global similarity transform and a
per-landmark jitter. The image holds, under that same transform, a head outline, skull vault, sella, orbit and
cervical vertebrae; bone and soft-tissue lines joining the landmarks (mandible, palate, incisors, profile);
at every landmark a small bright Gaussian blob centred exactly on its sub-pixel position (a size that cycles
with the landmark index, so neighbours differ); and Gaussian noise. Everything derives from ``seed``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .datalist import DEFAULT_FRACTIONS, datalist_from_records, write_datalist
from .landmark_sets import ISBI2015
from .readers import LandmarkRecord, check_spacing

__all__ = ["ISBI2015_TEMPLATE", "PHANTOM_SPATIAL_SIZE", "make_phantom", "write_phantom_dataset"]

ISBI2015_TEMPLATE = np.array(
    [
        [0.417, 0.434], [0.718, 0.404], [0.654, 0.511], [0.313, 0.509], [0.717, 0.636],
        [0.705, 0.766], [0.699, 0.825], [0.670, 0.850], [0.689, 0.842], [0.386, 0.727],
        [0.734, 0.705], [0.743, 0.709], [0.805, 0.675], [0.794, 0.751], [0.773, 0.624],
        [0.737, 0.856], [0.500, 0.595], [0.722, 0.602], [0.346, 0.554],
    ]
)
"""Mean ISBI 2015 landmark positions as fractions of the image (x / 1935, y / 2400), in :data:`ISBI2015`
order: the senior annotation of the 150 training images, rounded to 0.001."""

PHANTOM_SPATIAL_SIZE = (193, 240)
"""Default phantom size (W, H): the ISBI 1935 x 2400 image at a tenth."""

# (landmark, landmark, intensity) lines drawn between ISBI landmarks: bone, teeth, soft-tissue profile
_ISBI_LINES = tuple(
    (ISBI2015.index(a), ISBI2015.index(b), v)
    for a, b, v in (
        ("S", "N", 0.12), ("Ar", "Go", 0.35), ("Go", "Me", 0.35), ("Me", "Gn", 0.35), ("Gn", "Pog", 0.35),
        ("Pog", "B", 0.3), ("PNS", "ANS", 0.3), ("ANS", "A", 0.3), ("A", "UIT", 0.3), ("B", "LIT", 0.3),
        ("N", "Sn", 0.15), ("Sn", "Ls", 0.2), ("Ls", "Li", 0.2), ("Li", "Pog'", 0.2),
    )
)
# (centre u, centre v, radius u, radius v, intensity, ring) in template fractions; ring=False fills the ellipse
_ANATOMY = (
    (0.50, 0.50, 0.34, 0.46, 0.12, False),  # soft tissue of the head
    (0.47, 0.34, 0.31, 0.27, 0.08, False),  # brain case
    (0.47, 0.34, 0.31, 0.27, 0.30, True),  # skull vault
    (0.417, 0.445, 0.025, 0.018, 0.30, True),  # sella turcica
    (0.64, 0.47, 0.045, 0.035, 0.20, True),  # orbit
    (0.31, 0.64, 0.045, 0.025, 0.22, False),  # cervical vertebrae
    (0.31, 0.71, 0.045, 0.025, 0.22, False),
    (0.31, 0.78, 0.045, 0.025, 0.22, False),
)


def _similarity(rng: np.random.Generator, size: np.ndarray, max_rotation: float, max_scale: float, max_shift: float):
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
    scale = rng.uniform(1 - max_scale, 1 + max_scale)
    matrix = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.uniform(-max_shift, max_shift, 2) * size
    centre = (size - 1) / 2
    return matrix, centre + shift - matrix @ centre  # p' = matrix @ p + offset, p in pixels


def _draw_anatomy(image, xs, ys, size, matrix, offset):
    # template fraction (u, v) of every pixel: invert the similarity, divide by the size
    inv = np.linalg.inv(matrix)
    px, py = xs - offset[0], ys - offset[1]
    u = (inv[0, 0] * px + inv[0, 1] * py) / size[0]
    v = (inv[1, 0] * px + inv[1, 1] * py) / size[1]
    edge = 2.0 / size.min()  # about two pixels of soft edge, in template fractions
    for cu, cv, ru, rv, value, ring in _ANATOMY:
        r = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
        if ring:
            image += value * np.exp(-0.5 * ((r - 1) * min(ru, rv) / edge) ** 2)
        else:
            image += value / (1 + np.exp((r - 1) * min(ru, rv) / edge))


def _window(lo, hi, margin: float, shape) -> tuple[slice, slice]:
    """Pixel index slices covering the box ``[lo, hi]`` (x, y) grown by ``margin``, clipped to ``shape``."""
    start = np.maximum(np.floor(np.asarray(lo) - margin).astype(int), 0)
    stop = np.minimum(np.ceil(np.asarray(hi) + margin).astype(int) + 1, shape)
    return slice(start[0], max(stop[0], start[0])), slice(start[1], max(stop[1], start[1]))


def _draw_lines(image, points, width):
    for i, j, value in _ISBI_LINES:
        a, b = points[i], points[j]
        sx, sy = _window(np.minimum(a, b), np.maximum(a, b), 4 * width, image.shape)
        xs, ys = np.arange(sx.start, sx.stop)[:, None], np.arange(sy.start, sy.stop)[None, :]
        ab = b - a
        t = np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / max(ab @ ab, 1e-12), 0, 1)
        d2 = (xs - a[0] - t * ab[0]) ** 2 + (ys - a[1] - t * ab[1]) ** 2
        image[sx, sy] += value * np.exp(-0.5 * d2 / width**2)


def _draw_blobs(image, points, sigma, amplitude):
    for k, p in enumerate(points):
        s = sigma * (1 + 0.5 * (k % 3))
        sx, sy = _window(p, p, 4 * s, image.shape)
        gx = np.exp(-0.5 * ((np.arange(sx.start, sx.stop) - p[0]) / s) ** 2)
        gy = np.exp(-0.5 * ((np.arange(sy.start, sy.stop) - p[1]) / s) ** 2)
        image[sx, sy] += amplitude * np.outer(gx, gy)


def make_phantom(
    spatial_size: Sequence[int] = PHANTOM_SPATIAL_SIZE,
    landmarks: np.ndarray | Sequence[Sequence[float]] | None = None,
    seed: int = 0,
    max_rotation: float = 5.0,
    max_scale: float = 0.05,
    max_shift: float = 0.03,
    jitter: float = 0.01,
    blob_sigma: float | None = None,
    blob_amplitude: float = 0.45,
    noise_std: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """A skull-like image and its landmarks.

    Args:
        spatial_size: ``(W, H)`` in pixels (MONAI order: dim0 = x, dim1 = y).
        landmarks: ``(N, 2)`` pixel positions ``(x, y)`` to mark, used exactly as given; ``None`` for the
            19 ISBI landmarks of :data:`ISBI2015_TEMPLATE` under a random similarity transform and jitter
            (positions rounded to 0.001 px and kept inside the image).
        seed: seed of everything random (transform, jitter, noise).
        max_rotation: largest rotation of the random transform, degrees.
        max_scale: largest relative change of scale.
        max_shift: largest translation, as a fraction of the image size.
        jitter: standard deviation of the per-landmark displacement, as a fraction of the image size.
        blob_sigma: base standard deviation of the landmark blobs in pixels; default ``0.006 * max(W, H)``
            (at least 0.8 px). Landmark ``k`` gets ``blob_sigma * (1 + 0.5 * (k % 3))``.
        blob_amplitude: peak added by a blob.
        noise_std: standard deviation of the additive Gaussian noise (before clipping to ``[0, 1]``).

    Returns:
        ``(image, landmarks)``: ``(1, W, H)`` float32 in ``[0, 1]`` and ``(N, 2)`` float32. The lines of the
        ISBI skeleton are drawn when there are 19 landmarks (taken to be in :data:`ISBI2015` order).
    """
    size = np.asarray(spatial_size, dtype=np.float64)
    if size.shape != (2,) or np.any(size < 8) or np.any(size != np.round(size)):
        raise ValueError(f"spatial_size must be two integers >= 8 (W, H), got {spatial_size!r}.")
    rng = np.random.default_rng(seed)
    matrix, offset = _similarity(rng, size, max_rotation, max_scale, max_shift)
    if landmarks is None:
        points = ISBI2015_TEMPLATE * size
        points = points @ matrix.T + offset + rng.normal(0.0, jitter, points.shape) * size
        points = np.round(np.clip(points, 0, size - 1), 3)
    else:
        points = np.asarray(landmarks, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or not np.all(np.isfinite(points)):
            raise ValueError(f"landmarks must be a finite (N, 2) array, got shape {points.shape}.")
    xs, ys = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
    image = np.zeros(xs.shape)
    _draw_anatomy(image, xs, ys, size, matrix, offset)
    sigma = max(0.006 * size.max(), 0.8) if blob_sigma is None else float(blob_sigma)
    if len(points) == len(ISBI2015):
        _draw_lines(image, points, width=sigma)
    _draw_blobs(image, points, sigma, blob_amplitude)
    image += rng.normal(0.0, noise_std, image.shape)
    return np.clip(image, 0, 1)[None].astype(np.float32), points.astype(np.float32)


def write_phantom_dataset(
    out_dir: str | os.PathLike,
    num_images: int = 64,
    spatial_size: Sequence[int] = PHANTOM_SPATIAL_SIZE,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    bit_depth: int = 16,
) -> Path:
    """Write ``num_images`` phantoms as PNG and a datalist JSON; return the datalist's path.

    Files: ``out_dir/images/phantom_0000.png`` ... (grey, ``bit_depth`` 8 or 16, pixel row = y, so that MONAI's
    ``LoadImage(ensure_channel_first=True)`` gives ``(1, W, H)`` with landmark ``(x, y)`` at ``[0, x, y]``) and
    ``out_dir/datalist.json`` with image paths relative to ``out_dir``, landmarks, an isotropic spacing of
    ``0.1 * 2400 / H`` mm/pixel (the ISBI field of view) and a seeded split by ``fractions``. Image ``i`` is
    ``make_phantom(spatial_size, seed=s_i)`` with ``s_i`` drawn from ``numpy.random.SeedSequence([seed, i])``:
    the same arguments always write the same files.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}.")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}.")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    # the ISBI field of view; a phantom too small for it to be a radiograph's spacing is refused here, not when read
    spacing = check_spacing(0.1 * 2400 / spatial_size[1], f"phantoms of spatial_size {tuple(spatial_size)}")
    dtype, top = (np.uint16, 65535) if bit_depth == 16 else (np.uint8, 255)
    records = []
    for i in range(num_images):
        image_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        image, points = make_phantom(spatial_size, seed=image_seed)
        path = out_dir / "images" / f"phantom_{i:04d}.png"
        Image.fromarray(np.round(image[0].T * top).astype(dtype)).save(path)
        # positions are multiples of 0.001 px: written back exactly, without float32 digits
        points = np.round(points.astype(np.float64), 3)
        records.append(LandmarkRecord(f"phantom_{i:04d}", str(path), points, spacing, ISBI2015.name))
    datalist = datalist_from_records(
        records,
        split=fractions,
        seed=seed,
        name="cephalometric phantoms",
        description=f"{num_images} synthetic skull radiographs of {tuple(spatial_size)} (W, H) pixels, seed {seed}",
        ground_truth="synthetic",
    )
    return write_datalist(datalist, out_dir / "datalist.json", relative=True)
