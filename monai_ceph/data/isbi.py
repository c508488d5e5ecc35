"""ISBI 2015 cephalometric benchmark: 400 radiographs, 19 landmarks, two annotators, 0.1 mm/pixel.

Two layouts are read:

``isbi2015`` (the widely used Kaggle copy, as in ``../shared/data/isbi2015``)::

    images/001.jpg ... 400.jpg
    train_senior.csv (001-150)  test1_senior.csv (151-300)  test2_senior.csv (301-400)
    average_senior_junior.csv (all 400; mean of senior and junior, integer-rounded)

    header ``image_path,1_x,1_y,...,19_x,19_y``; integer pixel coordinates, origin at the top-left pixel.

``isbi2015_original`` (the challenge release)::

    RawImage/TrainingData/001.bmp ... 150.bmp, RawImage/Test1Data/151..300.bmp, RawImage/Test2Data/301..400.bmp
    AnnotationsByMD/400_senior/NNN.txt, AnnotationsByMD/400_junior/NNN.txt   (``AnnotationsByMD/`` optional)

    the first 19 lines of a text file are ``x,y``; the lines after them (class labels) are not landmarks.
    The ``"average"`` ground truth here is the exact mean of senior and junior (not rounded).

Both give landmarks in pixel-index ``(x, y)``, the image's own column/row order, which is the order MONAI's
``LoadImage`` gives for BMP/JPEG (``(C, 1935, 2400)``), so no axis swap is needed.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .landmark_sets import ISBI2015
from .readers import LandmarkFileError, LandmarkRecord, find_image, parse_coordinate

__all__ = [
    "ISBI2015_SPACING",
    "ISBI2015_SPLITS",
    "ISBI2015_CSVS",
    "read_isbi_csv",
    "read_isbi_txt",
    "load_isbi2015",
    "load_isbi2015_original",
]

ISBI2015_SPACING = (0.1, 0.1)
"""mm per pixel, (x, y): 1935 x 2400 pixels cover 193.5 mm x 240 mm."""

ISBI2015_SPLITS: Mapping[str, range] = {"train": range(1, 151), "test1": range(151, 301), "test2": range(301, 401)}
"""The challenge's split by image number."""

ISBI2015_CSVS: Mapping[str, tuple[str, ...]] = {
    "senior": ("train_senior.csv", "test1_senior.csv", "test2_senior.csv"),
    "average": ("average_senior_junior.csv",),
}
"""Annotation files of the Kaggle layout for each ground truth."""

_ORIGINAL_FOLDERS = {"train": "TrainingData", "test1": "Test1Data", "test2": "Test2Data"}
_ANNOTATORS = ("senior", "junior")
_NUM = len(ISBI2015)


def _split_of(image_id: str) -> str | None:
    number = int(image_id) if image_id.isdigit() else -1
    return next((name for name, ids in ISBI2015_SPLITS.items() if number in ids), None)


def read_isbi_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a Kaggle-layout ISBI CSV into ``{image id: (19, 2) float array}``, ids like ``"001"``.

    Every row must name an image and give 38 finite numbers under the header
    ``image_path,1_x,1_y,...,19_x,19_y``; an image may appear once.

    Raises:
        FileNotFoundError: the file does not exist.
        LandmarkFileError: wrong header, short or long row, non-numeric coordinate, duplicate image.
    """
    path = Path(path)
    expected = ["image_path"] + [f"{i}_{a}" for i in range(1, _NUM + 1) for a in "xy"]
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or [h.strip() for h in rows[0]] != expected:
        found = rows[0][:4] if rows else "an empty file"
        raise LandmarkFileError(f"{path}: header must be 'image_path,1_x,1_y,...,{_NUM}_x,{_NUM}_y', got {found}...")
    out: dict[str, np.ndarray] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(expected):
            raise LandmarkFileError(f"{path} line {line}: {len(row)} columns, expected {len(expected)}.")
        image_id = Path(row[0].strip()).stem
        if not image_id:
            raise LandmarkFileError(f"{path} line {line}: empty image_path.")
        if image_id in out:
            raise LandmarkFileError(f"{path} line {line}: image {row[0]!r} appears twice.")
        values = [parse_coordinate(v, f"{path} line {line} column {h!r}") for h, v in zip(expected[1:], row[1:])]
        out[image_id] = np.asarray(values, dtype=np.float64).reshape(_NUM, 2)
    return out


def read_isbi_txt(path: str | os.PathLike) -> np.ndarray:
    """Read an original-layout annotation ``NNN.txt``: its first 19 lines ``x,y`` as a ``(19, 2)`` float array.

    Raises:
        FileNotFoundError: the file does not exist.
        LandmarkFileError: fewer than 19 lines, or a line that is not two numbers separated by a comma.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if len(lines) < _NUM:
        raise LandmarkFileError(f"{path}: {len(lines)} lines, expected at least {_NUM} 'x,y' lines.")
    points = np.empty((_NUM, 2), dtype=np.float64)
    for i, line in enumerate(lines[:_NUM]):
        cells = [c for c in re.split(r"[,\s]+", line.strip()) if c]
        if len(cells) != 2:
            raise LandmarkFileError(f"{path} line {i + 1}: expected 'x,y', got {line.strip()!r}.")
        points[i] = [parse_coordinate(c, f"{path} line {i + 1}") for c in cells]
    return points


def _check_ground_truth(ground_truth: str, allowed) -> str:
    gt = ground_truth.lower()
    if gt not in allowed:
        raise ValueError(f"ground_truth must be one of {sorted(allowed)}, got {ground_truth!r}.")
    return gt


def load_isbi2015(dataset_dir: str | os.PathLike, ground_truth: str = "senior") -> list[LandmarkRecord]:
    """Records of the Kaggle-layout ISBI 2015 set (``images/`` + CSVs), sorted by id.

    Args:
        dataset_dir: the folder holding ``images/`` and the CSVs.
        ground_truth: ``"senior"`` (the three ``*_senior.csv``) or ``"average"`` (``average_senior_junior.csv``).
            The junior annotation is not in this layout (``2 * average - senior`` recovers it only to +-1 px).

    Returns:
        one :class:`LandmarkRecord` per annotated image, ``split`` from :data:`ISBI2015_SPLITS`.

    Raises:
        FileNotFoundError: a CSV or an image named in it is missing.
        LandmarkFileError: see :func:`read_isbi_csv`; an image in two CSVs.
    """
    root = Path(dataset_dir)
    gt = _check_ground_truth(ground_truth, ISBI2015_CSVS)
    points: dict[str, np.ndarray] = {}
    for name in ISBI2015_CSVS[gt]:
        for image_id, p in read_isbi_csv(root / name).items():
            if image_id in points:
                raise LandmarkFileError(f"{root / name}: image {image_id!r} also appears in another CSV.")
            points[image_id] = p
    return [
        LandmarkRecord(
            id=image_id,
            image=str(find_image(root / "images", image_id)),
            landmarks=points[image_id],
            spacing=np.asarray(ISBI2015_SPACING, dtype=np.float64),
            landmark_set=ISBI2015.name,
            split=_split_of(image_id),
        )
        for image_id in sorted(points)
    ]


def _annotation_dir(root: Path, annotator: str) -> Path:
    for candidate in (root / "AnnotationsByMD" / f"400_{annotator}", root / f"400_{annotator}"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no annotation folder AnnotationsByMD/400_{annotator} (or 400_{annotator}) in {root}.")


def load_isbi2015_original(dataset_dir: str | os.PathLike, ground_truth: str = "senior") -> list[LandmarkRecord]:
    """Records of the ISBI 2015 set in the challenge's own layout (``RawImage/`` + ``AnnotationsByMD/``).

    Args:
        dataset_dir: the folder holding ``RawImage/`` and ``AnnotationsByMD/`` (or ``400_senior/`` directly).
        ground_truth: ``"senior"``, ``"junior"`` or ``"average"`` (exact mean of the two, not rounded).

    Returns:
        one :class:`LandmarkRecord` per image in ``RawImage/{TrainingData,Test1Data,Test2Data}``, sorted by id,
        ``split`` from the folder (``"train"``, ``"test1"``, ``"test2"``).

    Raises:
        FileNotFoundError: a folder or the annotation file of an image is missing.
        LandmarkFileError: see :func:`read_isbi_txt`.
    """
    root = Path(dataset_dir)
    gt = _check_ground_truth(ground_truth, (*_ANNOTATORS, "average"))
    annotators = _ANNOTATORS if gt == "average" else (gt,)
    folders = {a: _annotation_dir(root, a) for a in annotators}
    records = []
    for split, folder in _ORIGINAL_FOLDERS.items():
        image_dir = root / "RawImage" / folder
        if not image_dir.is_dir():
            raise FileNotFoundError(f"no image folder {image_dir}.")
        for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() == ".bmp"):
            points = np.mean([read_isbi_txt(folders[a] / f"{image.stem}.txt") for a in annotators], axis=0)
            records.append(
                LandmarkRecord(
                    id=image.stem,
                    image=str(image),
                    landmarks=points,
                    spacing=np.asarray(ISBI2015_SPACING, dtype=np.float64),
                    landmark_set=ISBI2015.name,
                    split=split,
                )
            )
    return sorted(records, key=lambda r: r.id)
