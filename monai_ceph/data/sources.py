"""One entry point from "what the user gave" to a checked datalist: a datalist JSON, a dataset folder, or nothing.

Bundles call :func:`load_datalist` once at start-up, so a bad entry (missing image, wrong landmark count, bad
spacing) stops the run with an error naming the entry before any training happens, and a run given no data at
all trains on the embedded synthetic phantoms, generated on first use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai.data import load_decathlon_datalist

from .datalist import build_datalist
from .landmark_sets import get_landmark_set
from .phantom import PHANTOM_SPATIAL_SIZE, write_phantom_dataset
from .readers import (
    IMAGE_SUFFIXES,
    DataFileError,
    LandmarkFileError,
    check_spacing,
    landmarks_from_json,
    resolve_spacing,
)

__all__ = ["detect_format", "check_datalist", "check_section", "load_datalist", "image_folder_datalist"]


def detect_format(dataset_dir: str | os.PathLike) -> str:
    """The :data:`~monai_ceph.data.datalist.DATASET_FORMATS` name of a dataset folder, from its layout."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist.")
    if (root / "images").is_dir() and any(root.glob("*_senior.csv")):
        return "isbi2015"
    if (root / "RawImage").is_dir() and (root / "AnnotationsByMD").is_dir():
        return "isbi2015_original"
    if any((root / s / "Cephalograms").is_dir() for s in ("train", "valid", "test")):
        return "aariz"
    if any(root.glob("*.json")):
        return "labelme"
    raise DataFileError(
        f"{root}: not a known dataset layout (ISBI 2015 images/ + *_senior.csv, ISBI 2015 RawImage/ + "
        "AnnotationsByMD/, Aariz train|valid|test/Cephalograms, or labelme *.json); give a datalist JSON instead."
    )


def check_datalist(items: Sequence[Mapping], where: str = "datalist") -> list[dict]:
    """Check every item of a datalist section and return them as plain dicts; raise naming the first bad one.

    Each item needs an existing ``"image"``, ``"landmarks"`` of the length of its ``"landmark_set"`` (default
    ``isbi2015``) with numeric or null coordinates, and a positive ``"spacing"`` of two values.
    """
    checked = []
    for i, item in enumerate(items):
        name = f"{where} entry {i} (id {item.get('id', '?')!r}, image {item.get('image')!r})"
        for key in ("image", "landmarks", "spacing"):
            if key not in item:
                raise DataFileError(f"{name}: missing key {key!r}.")
        if not Path(item["image"]).is_file():
            raise FileNotFoundError(f"{name}: image file not found.")
        landmark_set = get_landmark_set(item.get("landmark_set", "isbi2015"))
        landmarks = landmarks_from_json(item["landmarks"], f"{name} landmarks")
        if len(landmarks) != len(landmark_set):
            raise LandmarkFileError(
                f"{name}: {len(landmarks)} landmarks, expected {len(landmark_set)} (x, y) landmarks of the "
                f"{landmark_set.name} set."
            )
        check_spacing(item["spacing"], name)
        checked.append(dict(item))
    return checked


def check_section(datalist: Mapping[str, Sequence], section: str) -> None:
    """Raise naming ``section`` when the datalist lacks it or it is empty (an evaluation would silently do nothing)."""
    if not datalist.get(section):
        available = {k: len(v) for k, v in datalist.items() if isinstance(v, Sequence) and not isinstance(v, str)}
        raise DataFileError(f"datalist section {section!r} is missing or empty; sections and sizes: {available}.")


def load_datalist(
    datalist: str | os.PathLike | None = None,
    dataset_dir: str | os.PathLike | None = None,
    fmt: str | None = None,
    ground_truth: str | None = None,
    phantom_dir: str | os.PathLike = "data/phantoms",
    num_phantoms: int = 64,
    phantom_size: Sequence[int] | None = None,
    seed: int = 0,
) -> dict[str, list[dict]]:
    """Resolve the data a bundle runs on and return its checked ``training``/``validation``/``test`` sections.

    Priority: ``datalist`` (a JSON file, relative image paths resolved against its folder; every list of items in
    it is a section, so extra ones such as ``"test2"`` are kept), else ``dataset_dir``
    (format detected from the layout unless ``fmt`` is given, standard split), else the embedded default:
    ``num_phantoms`` synthetic phantoms written to ``phantom_dir`` on first use and reused after.
    """
    if datalist is not None:
        path = Path(datalist)
        if not path.is_file():
            raise FileNotFoundError(f"datalist file {path} does not exist.")
        with open(path) as f:
            content = json.load(f)
        # every list of items is a section: training/validation/test, and any others (e.g. "test2")
        names = [k for k, v in content.items() if isinstance(v, list) and all(isinstance(i, dict) for i in v)]
        sections = {key: [] for key in ("training", "validation", "test")}
        for key in names:
            sections[key] = load_decathlon_datalist(str(path), is_segmentation=False, data_list_key=key) if content[key] else []
        where = str(path)
    elif dataset_dir is not None:
        fmt = fmt or detect_format(dataset_dir)
        built = build_datalist(dataset_dir, fmt=fmt, ground_truth=ground_truth)
        sections = {key: built.get(key, []) for key in ("training", "validation", "test")}
        where = f"{dataset_dir} ({fmt})"
    else:
        out = Path(phantom_dir)
        file = out / "datalist.json"
        if not file.is_file():
            write_phantom_dataset(out, num_images=num_phantoms, spatial_size=phantom_size or PHANTOM_SPATIAL_SIZE,
                                  seed=seed)
        return load_datalist(datalist=file)
    return {key: check_datalist(items, f"{where} [{key}]") for key, items in sections.items()}


def image_folder_datalist(
    folder: str | os.PathLike, spacing: Sequence[float] | float | None = None, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> list[dict]:
    """Inference items ``{"image", "spacing", "id"}`` for every image in ``folder`` (sorted, not recursive), or for a
    single image file.

    DICOM files take their spacing from their tags (PixelSpacing, else ImagerPixelSpacing); other files take
    ``spacing`` (mm/pixel, one value or ``(sx, sy)``), and without it are an error naming the file, since a
    JPEG/PNG carries no physical size and every distance reported in mm would be wrong.
    """
    root = Path(folder)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    else:
        raise FileNotFoundError(f"input {root} does not exist.")
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(suffixes)}) in {root}.")
    items = []
    for f in files:
        pixel = resolve_spacing(f, default=spacing, missing="the image has no pixel spacing of its own")
        items.append({"image": str(f.resolve()), "spacing": [float(s) for s in pixel], "id": f.stem})
    return items
