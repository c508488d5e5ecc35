"""Aariz cephalometric dataset (Khalid et al. 2023): 1000 radiographs from 7 devices, 29 landmarks.

Layout of the release::

    cephalogram_machine_mappings.csv        cephalogram_id,machine,pixel_size,image_format,mode
    train/ valid/ test/
        Cephalograms/<id>.png|jpg|...
        Annotations/Cephalometric Landmarks/Senior Orthodontists/<id>.json
        Annotations/Cephalometric Landmarks/Junior Orthodontists/<id>.json

An annotation JSON is ``{"ceph_id": ..., "landmarks": [{"landmark_id", "title", "symbol", "value": {"x", "y"}},
...]}``; the order of the entries is not relied upon: each is matched to the :data:`AARIZ` set by its
``symbol`` (``"N`"`` reads as ``"N'"``) or, failing that, its ``title`` (``"A-point"``, ``"Labrale superius"``...).
The dataset's ground truth is the mean of the senior and junior annotations; it is kept unrounded here (the
authors' loader rounds it up to whole pixels). Pixel size (mm/pixel, isotropic) differs per device and is
read per image from the mapping CSV.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .landmark_sets import AARIZ, LandmarkSet, get_landmark_set, map_landmarks
from .readers import (
    LandmarkCollector,
    LandmarkFileError,
    LandmarkRecord,
    check_spacing,
    find_image,
    match_landmark,
    parse_landmark,
    read_json,
)

__all__ = ["AARIZ_MAPPING_CSV", "AARIZ_TITLES", "read_aariz_json", "read_aariz_pixel_sizes", "load_aariz"]

AARIZ_MAPPING_CSV = "cephalogram_machine_mappings.csv"

AARIZ_TITLES = {
    "A-point": "A",
    "B-point": "B",
    "Lower 2nd PM Cusp Tip": "LPM",
    "Upper 2nd PM Cusp Tip": "UPM",
    "Lower Incisor Tip": "LIT",
    "Upper Incisor Tip": "UIT",
    "Labrale inferius": "Li",
    "Labrale superius": "Ls",
}
"""Titles the Aariz files use that differ from the full names of :data:`AARIZ` (the others match, any case)."""

_SPLITS = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "val": "valid",
           "test": "test"}
_ANNOTATORS = {"senior": "Senior Orthodontists", "junior": "Junior Orthodontists"}
_TITLE_KEYS = {k.lower(): v for k, v in AARIZ_TITLES.items()}


def _match_entry(entry, where: str) -> int:
    symbol, title = entry.get("symbol"), entry.get("title")
    by_symbol = by_title = None
    if symbol is not None:
        try:
            by_symbol = match_landmark(AARIZ, symbol)
        except KeyError:
            pass
    if title is not None:
        try:
            by_title = match_landmark(AARIZ, _TITLE_KEYS.get(str(title).strip().lower(), title))
        except KeyError:
            pass
    if by_symbol is not None and by_title is not None and by_symbol != by_title:
        raise LandmarkFileError(f"{where}: symbol {symbol!r} and title {title!r} name different landmarks.")
    index = by_symbol if by_symbol is not None else by_title
    if index is None:
        raise LandmarkFileError(f"{where}: unknown landmark (symbol {symbol!r}, title {title!r}); "
                                f"expected one of {list(AARIZ.abbreviations)}.")
    return index


def read_aariz_json(path: str | os.PathLike) -> np.ndarray:
    """Read one Aariz annotation JSON as a ``(29, 2)`` float array in :data:`AARIZ` order.

    A landmark absent from the file (or with ``"value": null``) is NaN, with a :class:`MissingLandmarkWarning`.

    Raises:
        FileNotFoundError: the file does not exist.
        LandmarkFileError: not JSON, no ``"landmarks"`` list, an unknown or duplicated landmark, a value without
            numeric ``x`` and ``y``.
    """
    path = Path(path)
    data = read_json(path)
    entries = data.get("landmarks") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LandmarkFileError(f"{path}: expected an object with a 'landmarks' list.")
    collector = LandmarkCollector(AARIZ, str(path))
    for n, entry in enumerate(entries):
        where = f"{path} landmarks[{n}]"
        if not isinstance(entry, dict):
            raise LandmarkFileError(f"{where}: expected an object, got {type(entry).__name__}.")
        index = _match_entry(entry, where)
        value = entry.get("value")
        if value is not None and (not isinstance(value, dict) or "x" not in value or "y" not in value):
            raise LandmarkFileError(f"{where}: 'value' must be {{'x': ..., 'y': ...}}, got {value!r}.")
        position = None if value is None else parse_landmark((value["x"], value["y"]), where)
        collector.put(index, position, where, given_by=f"at landmarks[{n}]")
    return collector.result("position")


def read_aariz_pixel_sizes(path: str | os.PathLike) -> dict[str, float]:
    """Read ``cephalogram_machine_mappings.csv`` into ``{cephalogram_id: pixel size in mm}``.

    Raises:
        FileNotFoundError: the file does not exist.
        LandmarkFileError: the ``cephalogram_id`` or ``pixel_size`` column is missing, an id appears twice.
        SpacingError: a pixel size that is not a positive number (the message names the row).
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "cephalogram_id" not in columns or "pixel_size" not in columns:
            raise LandmarkFileError(f"{path}: needs columns 'cephalogram_id' and 'pixel_size', got {columns}.")
        sizes: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            image_id = row["cephalogram_id"]
            if not image_id:
                raise LandmarkFileError(f"{path} line {line}: empty cephalogram_id.")
            if image_id in sizes:
                raise LandmarkFileError(f"{path} line {line}: cephalogram_id {image_id!r} appears twice.")
            sizes[image_id] = float(check_spacing(row["pixel_size"], f"{path} line {line} pixel_size")[0])
    return sizes


def _split_dirs(root: Path) -> dict[str, Path]:
    found = {}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            split = _SPLITS.get(child.name.lower())
            if child.is_dir() and split is not None:
                if split in found:
                    raise ValueError(f"{root}: two folders for the {split!r} split: {found[split].name}, {child.name}.")
                found[split] = child
    if not found:
        raise FileNotFoundError(f"no train/valid/test folder in {root} (is it the Aariz dataset folder?).")
    return {split: found[split] for split in ("train", "valid", "test") if split in found}


def load_aariz(
    dataset_dir: str | os.PathLike,
    ground_truth: str = "average",
    landmark_set: str | LandmarkSet = AARIZ,
    mapping_csv: str | os.PathLike | None = None,
) -> list[LandmarkRecord]:
    """Records of the Aariz dataset, ordered by split (train, valid, test) then id.

    Args:
        dataset_dir: the folder holding ``train/``, ``valid/``, ``test/`` (any case) and the mapping CSV.
        ground_truth: ``"average"`` (the dataset's ground truth: per landmark, the mean of the annotators who
            placed it), ``"senior"`` or ``"junior"``.
        landmark_set: ``"aariz"`` (29 landmarks) or ``"isbi2015"`` (the 19 ISBI landmarks, reordered).
        mapping_csv: the pixel-size CSV; default ``dataset_dir/cephalogram_machine_mappings.csv``.

    Raises:
        FileNotFoundError: a split, annotation folder, annotation file, image or the CSV is missing.
        LandmarkFileError: see :func:`read_aariz_json`, :func:`read_aariz_pixel_sizes`; an image not in the CSV.
    """
    root = Path(dataset_dir)
    gt = ground_truth.lower()
    if gt not in (*_ANNOTATORS, "average"):
        raise ValueError(f"ground_truth must be 'average', 'senior' or 'junior', got {ground_truth!r}.")
    annotators = list(_ANNOTATORS) if gt == "average" else [gt]
    target = get_landmark_set(landmark_set)
    csv_path = Path(mapping_csv) if mapping_csv is not None else root / AARIZ_MAPPING_CSV
    split_dirs = _split_dirs(root)
    sizes = read_aariz_pixel_sizes(csv_path)
    records = []
    for split, split_dir in split_dirs.items():
        folders = {a: split_dir / "Annotations" / "Cephalometric Landmarks" / _ANNOTATORS[a] for a in annotators}
        for folder in folders.values():
            if not folder.is_dir():
                raise FileNotFoundError(f"no annotation folder {folder}.")
        ids = sorted({p.stem for f in folders.values() for p in f.glob("*.json")})
        for image_id in ids:
            stacked = np.stack([read_aariz_json(folders[a] / f"{image_id}.json") for a in annotators])
            counts = np.sum(~np.isnan(stacked), axis=0)
            points = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
            if image_id not in sizes:
                raise LandmarkFileError(f"{csv_path}: no pixel_size for cephalogram_id {image_id!r} ({split}).")
            if target is not AARIZ:
                points = np.asarray(map_landmarks(points, AARIZ, target), dtype=np.float64)
            records.append(
                LandmarkRecord(
                    id=image_id,
                    image=str(find_image(split_dir / "Cephalograms", image_id)),
                    landmarks=points,
                    spacing=np.full(2, sizes[image_id]),
                    landmark_set=target.name,
                    split=split,
                )
            )
    return records
