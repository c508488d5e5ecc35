"""Landmark labels as a MONAI Label app stores them: one JSON per image in the datastore's ``labels/<tag>/``.

A label file names every landmark of a :class:`~monai_ceph.data.landmark_sets.LandmarkSet` with its position in
pixels of the source image, ``(x, y)`` pixel-index units (integer = pixel centre), ``null`` for a landmark the
annotator could not place::

    {
        "landmark_set": "isbi2015",
        "landmarks": [
            {"abbreviation": "S", "name": "Sella", "x": 835.0, "y": 996.0},
            ...
            {"abbreviation": "Ar", "name": "Articulare", "x": null, "y": null}
        ],
        "spacing": [0.1, 0.1]
    }

``"spacing"`` (mm/pixel, ``(x, y)``) is optional. Entries may carry more keys (the app's prediction adds
``"confidence"``, ``"x_mm"``, ``"group"``...): they are ignored, so a prediction saved back unchanged is a valid
label. An entry is matched by ``"abbreviation"`` (else ``"name"``), in any order; a landmark without an entry is
missing. The plain datalist form, ``"landmarks": [[x, y] | null, ...]`` in the set's order, is read too.

A MONAI Label datastore folder (images at its top level, labels in ``labels/final/<image id>.json``) becomes a
datalist with :func:`monailabel_datalist`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from monai_ceph.deprecation import deprecated_alias

from .json_io import dump_json
from .datalist import split_records
from .landmark_sets import ISBI2015, LandmarkSet, get_landmark_set
from .readers import (
    LandmarkCollector,
    LandmarkFileError,
    LandmarkRecord,
    MissingLandmarkWarning,
    check_spacing,
    find_image,
    landmarks_from_json,
    landmarks_to_json,
    parse_landmark,
    read_json,
    resolve_spacing,
)

__all__ = [
    "MonaiLabelLandmarks",
    "monailabel_label",
    "write_monailabel_json",
    "parse_monailabel_label",
    "read_monailabel_json",
    "monailabel_records",
    "load_monailabel",
    "monailabel_datalist",
]


class MonaiLabelLandmarks(NamedTuple):
    """What a label file holds: ``landmarks`` ``(N, 2)`` float64 ``(x, y)`` with NaN rows for missing ones, in the
    order of ``landmark_set``; ``spacing`` ``(2,)`` mm/pixel, or ``None`` when the file gives none."""

    landmarks: np.ndarray
    landmark_set: LandmarkSet
    spacing: np.ndarray | None

    @property
    @deprecated_alias("MonaiLabelLandmarks.landmarks")
    def points(self) -> np.ndarray:
        """Deprecated name of :attr:`landmarks`."""
        return self.landmarks


def monailabel_label(landmarks, landmark_set: str | LandmarkSet = ISBI2015, spacing=None) -> dict:
    """The label JSON (a ``dict``) of ``landmarks`` ``(N, 2)`` in ``landmark_set`` order; NaN is written ``null``.

    Args:
        landmarks: ``(N, 2)`` ``(x, y)`` source pixels.
        landmark_set: the set ``landmarks`` follow.
        spacing: mm/pixel (one value or ``(sx, sy)``) written as ``"spacing"``; ``None`` to leave it out.
    """
    lms = get_landmark_set(landmark_set)
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (len(lms), 2):
        raise ValueError(f"expected {len(lms)} (x, y) landmarks of the {lms.name} set, got shape {pts.shape}.")
    label: dict = {
        "landmark_set": lms.name,
        "landmarks": [
            {"abbreviation": a, "name": n, "x": x, "y": y}
            for a, n, (x, y) in zip(lms.abbreviations, lms.names, landmarks_to_json(pts))
        ],
    }
    if spacing is not None:
        label["spacing"] = [float(s) for s in check_spacing(spacing, "spacing argument")]
    return label


def write_monailabel_json(
    path: str | os.PathLike, landmarks, landmark_set: str | LandmarkSet = ISBI2015, spacing=None
) -> Path:
    """Write :func:`monailabel_label` of ``landmarks`` to ``path`` (folders created, atomically) and return the path."""
    return dump_json(monailabel_label(landmarks, landmark_set, spacing), path, indent=1)


def _entry_landmarks(entries: list, lms: LandmarkSet, where: str) -> np.ndarray:
    collector = LandmarkCollector(lms, where)
    for n, entry in enumerate(entries):
        at = f"{where} landmarks[{n}]"
        if not isinstance(entry, Mapping):
            raise LandmarkFileError(f"{at}: expected an object {{'abbreviation', 'x', 'y'}}, got {entry!r}.")
        label = entry.get("abbreviation", entry.get("name"))
        if not isinstance(label, str):
            raise LandmarkFileError(f"{at}: no 'abbreviation' (or 'name') naming the landmark.")
        index = collector.index(label, at)
        if "x" not in entry or "y" not in entry:
            raise LandmarkFileError(f"{at} ({label}): needs both 'x' and 'y' (null for a missing landmark).")
        collector.put(index, parse_landmark((entry["x"], entry["y"]), f"{at} ({label})"), at,
                      given_by=f"by landmarks[{n}]")
    return collector.landmarks


def _pair_landmarks(pairs: list, lms: LandmarkSet, where: str) -> np.ndarray:
    if len(pairs) != len(lms):
        raise LandmarkFileError(f"{where}: {len(pairs)} [x, y] pairs, expected {len(lms)} of the {lms.name} set.")
    return landmarks_from_json(pairs, f"{where} landmarks")


def parse_monailabel_label(
    data, landmark_set: str | LandmarkSet | None = None, where: str = "label"
) -> MonaiLabelLandmarks:
    """Parse an already-loaded label JSON (see the module docstring); ``where`` names it in errors.

    Args:
        data: the JSON object.
        landmark_set: the expected set; ``None`` takes the file's ``"landmark_set"`` (default ``"isbi2015"``).
        where: the file (or request) the label came from, used in error messages.

    Raises:
        LandmarkFileError: not a label object, a set other than ``landmark_set``, an unknown or repeated landmark,
            a non-numeric coordinate, only one of ``x``/``y`` given.
        SpacingError: a ``"spacing"`` that is not one or two positive numbers.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("landmarks"), list):
        raise LandmarkFileError(f"{where}: not a landmark label (expected an object with a 'landmarks' list).")
    named = data.get("landmark_set")
    if named is not None and not isinstance(named, str):
        raise LandmarkFileError(f"{where}: 'landmark_set' must be a name, got {named!r}.")
    lms = get_landmark_set(ISBI2015 if landmark_set is None else landmark_set)
    if named is not None:
        try:
            file_set = get_landmark_set(named)
        except ValueError as e:
            raise LandmarkFileError(f"{where}: {e}") from None
        if landmark_set is None:
            lms = file_set
        elif file_set.name != lms.name:
            raise LandmarkFileError(f"{where}: landmarks of the {named!r} set, expected the {lms.name} set.")
    entries = data["landmarks"]
    if entries and all(isinstance(e, Mapping) for e in entries):
        landmarks = _entry_landmarks(entries, lms, where)
    elif entries and all(e is None or isinstance(e, list) for e in entries):
        landmarks = _pair_landmarks(entries, lms, where)
    else:
        # an empty list, or objects mixed with pairs: let the object reader name the offending entry
        landmarks = _entry_landmarks(entries, lms, where)
    spacing = data.get("spacing")
    return MonaiLabelLandmarks(landmarks, lms, None if spacing is None else check_spacing(spacing, f"{where} 'spacing'"))


def read_monailabel_json(
    path: str | os.PathLike, landmark_set: str | LandmarkSet | None = None
) -> MonaiLabelLandmarks:
    """Read a landmark label JSON (see the module docstring) into ``(landmarks, landmark_set, spacing)``.

    Landmarks without an entry (or with ``null`` coordinates) are NaN; a :class:`MissingLandmarkWarning` names
    them.

    Args:
        path: the label file.
        landmark_set: the expected set; ``None`` takes the file's ``"landmark_set"`` (default ``"isbi2015"``).

    Raises:
        FileNotFoundError: no such file.
        LandmarkFileError: invalid JSON or content (see :func:`parse_monailabel_label`).
        SpacingError: an invalid ``"spacing"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no label file {path}.")
    label = parse_monailabel_label(read_json(path), landmark_set, str(path))
    missing = [a for a, p in zip(label.landmark_set.abbreviations, label.landmarks) if np.isnan(p).any()]
    if missing:
        warnings.warn(f"{path}: no point for {missing}; they are NaN.", MissingLandmarkWarning, stacklevel=2)
    return label


def monailabel_records(
    pairs: Iterable[Mapping[str, str]],
    landmark_set: str | LandmarkSet = ISBI2015,
    spacing: float | Sequence[float] | None = None,
) -> list[LandmarkRecord]:
    """Records of ``{"image": path, "label": label json path}`` pairs (what a MONAI Label datastore's
    ``datalist()`` returns), sorted by id (the label file's stem).

    Spacing: a DICOM image's header, else the label's ``"spacing"``, else ``spacing`` (mm/pixel); else
    :class:`SpacingError`.
    """
    lms = get_landmark_set(landmark_set)
    default = None if spacing is None else check_spacing(spacing, "spacing argument")
    records = []
    for pair in pairs:
        label_path, image = Path(pair["label"]), Path(pair["image"])
        if not image.is_file():
            raise FileNotFoundError(f"{label_path}: its image {image} does not exist.")
        label = read_monailabel_json(label_path, lms)
        spacing = resolve_spacing(image, label.spacing, default, where=label_path,
                                  missing=f"the image {image.name} carries no pixel spacing and the label gives none")
        records.append(
            LandmarkRecord(id=label_path.stem, image=str(image), landmarks=label.landmarks, spacing=spacing,
                           landmark_set=lms.name)
        )
    return sorted(records, key=lambda r: r.id)


def load_monailabel(
    studies_dir: str | os.PathLike,
    landmark_set: str | LandmarkSet = ISBI2015,
    spacing: float | Sequence[float] | None = None,
    tag: str = "final",
) -> list[LandmarkRecord]:
    """Records of a MONAI Label datastore folder: every ``labels/<tag>/<id>.json`` with its image ``<id>.*`` at the
    folder's top level (see :func:`monailabel_records` for the spacing). Label files of other types are skipped.

    Raises:
        FileNotFoundError: the folder, or the image of a label, is missing.
    """
    root = Path(studies_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no MONAI Label datastore folder {root}.")
    pairs = []
    for label in sorted((root / "labels" / tag).glob("*.json")):
        try:
            image = find_image(root, label.stem)
        except FileNotFoundError:
            raise FileNotFoundError(f"{label}: no image {label.stem}.* in the datastore folder {root}.") from None
        pairs.append({"image": str(image), "label": str(label)})
    return monailabel_records(pairs, landmark_set, spacing)


def monailabel_datalist(
    records: Sequence[LandmarkRecord] | str | os.PathLike,
    val_fraction: float = 0.0,
    seed: int = 0,
    **kwargs,
) -> dict:
    """Datalist (``training``/``validation``/``test``) of labelled datastore images, for fine-tuning a bundle.

    Args:
        records: records (e.g. from :func:`monailabel_records`), or a datastore folder read with
            :func:`load_monailabel` (``kwargs`` are passed to it).
        val_fraction: ``0`` puts every image in both ``training`` and ``validation`` (a handful of fresh labels:
            the validation figure then measures the fit, not generalisation); else the fraction held out for
            ``validation`` by a seeded split (at least one image on each side). ``test`` is empty.
        seed: seed of the split.
    """
    if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
        records = load_monailabel(records, **kwargs)
    if not records:
        raise ValueError("no labelled images: save landmark labels (tag 'final') before training.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    names = {r.landmark_set for r in records}
    if len(names) != 1:
        raise ValueError(f"records mix landmark sets {sorted(names)}.")
    lms = get_landmark_set(names.pop())
    if val_fraction == 0.0 or len(records) < 2:
        training, validation = list(records), list(records)
    else:
        n_val = min(max(1, round(val_fraction * len(records))), len(records) - 1)
        parts = split_records(records, (len(records) - n_val, n_val, 0), seed)
        training, validation = parts["training"], parts["validation"]
    return {
        "name": "monailabel landmarks",
        "description": f"{len(records)} labelled images of a MONAI Label datastore",
        "landmark_set": lms.name,
        "landmark_names": list(lms.abbreviations),
        "split": {"val_fraction": val_fraction, "seed": seed},
        "training": [r.to_item() for r in training],
        "validation": [r.to_item() for r in validation],
        "test": [],
    }
