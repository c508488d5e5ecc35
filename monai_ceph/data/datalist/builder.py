"""The datalist builder: records of a dataset -> a split MONAI datalist (see :mod:`monai_ceph.data.datalist`)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..aariz import load_aariz
from ..ids import duplicate_ids, output_name
from ..json_io import dump_json
from ..isbi import load_isbi2015, load_isbi2015_original
from ..labelme import load_labelme
from ..landmark_sets import get_landmark_set
from ..readers import LandmarkRecord

__all__ = [
    "DATALIST_KEYS",
    "DATASET_FORMATS",
    "DEFAULT_FRACTIONS",
    "STANDARD_SPLITS",
    "SplitWarning",
    "warn_if_rescaled",
    "load_records",
    "split_records",
    "build_datalist",
    "datalist_from_records",
    "write_datalist",
]

DATALIST_KEYS = ("training", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)

_ISBI_KEYS = {"train": "training", "test1": "validation", "test2": "test"}
STANDARD_SPLITS: Mapping[str, Mapping[str, str] | None] = {
    "isbi2015": _ISBI_KEYS,
    "isbi2015_original": _ISBI_KEYS,
    "aariz": {"train": "training", "valid": "validation", "test": "test"},
    "labelme": None,
}
"""For each format, its own split name -> datalist key; ``None`` where the format has no split."""

_LOADERS: Mapping[str, Callable[..., list[LandmarkRecord]]] = {
    "isbi2015": load_isbi2015,
    "isbi2015_original": load_isbi2015_original,
    "aariz": load_aariz,
    "labelme": load_labelme,
}
DATASET_FORMATS = tuple(_LOADERS)


def load_records(
    dataset_dir: str | os.PathLike,
    fmt: str = "isbi2015",
    ground_truth: str | None = None,
    landmark_set: str | None = None,
    spacing: float | Sequence[float] | None = None,
) -> list[LandmarkRecord]:
    """Read every annotated image of a dataset with the reader of ``fmt``.

    Args:
        dataset_dir: the dataset folder.
        fmt: one of :data:`DATASET_FORMATS`.
        ground_truth: ISBI: ``"senior"`` (default) or ``"average"`` (original layout also ``"junior"``);
            Aariz: ``"average"`` (default), ``"senior"`` or ``"junior"``; labelme: not applicable.
        landmark_set: Aariz: ``"aariz"`` (default) or ``"isbi2015"``; labelme: the set of its labels
            (default ``"isbi2015"``); ISBI: only ``"isbi2015"``.
        spacing: labelme only: mm/pixel for images without their own (non-DICOM).
    """
    if fmt not in _LOADERS:
        raise ValueError(f"unknown dataset format {fmt!r}; available: {list(DATASET_FORMATS)}.")
    kwargs: dict = {}
    if ground_truth is not None:
        if fmt == "labelme":
            raise ValueError("labelme folders have a single annotation: ground_truth does not apply.")
        kwargs["ground_truth"] = ground_truth
    if landmark_set is not None:
        if fmt.startswith("isbi2015"):
            if get_landmark_set(landmark_set).name != "isbi2015":
                raise ValueError(f"the {fmt} dataset is annotated with the isbi2015 set only, not {landmark_set!r}.")
        else:
            kwargs["landmark_set"] = landmark_set
    if spacing is not None:
        if fmt != "labelme":
            raise ValueError(f"the {fmt} dataset defines its own pixel spacing: spacing applies to labelme only.")
        kwargs["spacing"] = spacing
    return _LOADERS[fmt](dataset_dir, **kwargs)


class SplitWarning(UserWarning):
    """A seeded split is not what its fractions say: they were rescaled to sum 1, or a section they give a share
    came out empty."""


def warn_if_rescaled(fractions: Sequence[float], where: str = "split fractions") -> None:
    """A :class:`SplitWarning` when ``fractions`` do not sum to 1 (the split uses them rescaled): for fractions a user
    typed (``--split 0.8 0.1 0.05``), where the library's own callers may pass proportions (``(1, 1, 1)``)."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.size and np.all(np.isfinite(f)) and f.sum() > 0 and not math.isclose(f.sum(), 1.0, abs_tol=1e-6):
        used = [round(float(v), 6) for v in f / f.sum()]
        warnings.warn(f"{where} {[float(v) for v in f]} sum to {float(f.sum()):g}, not 1: rescaled to {used}.",
                      SplitWarning, stacklevel=3)


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (len(DATALIST_KEYS),) or not np.all(np.isfinite(f)) or np.any(f < 0) or f.sum() <= 0:
        raise ValueError(f"split fractions must be {len(DATALIST_KEYS)} non-negative numbers "
                         f"(training, validation, test) with a positive sum, got {list(fractions)}.")
    exact = f / f.sum() * n
    counts = np.floor(exact).astype(int)
    # largest remainder, ties to the earlier key: the counts add up to n
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    empty = [key for key, share, count in zip(DATALIST_KEYS, f, counts) if share > 0 and count == 0]
    if empty:
        warnings.warn(f"split fractions {[float(v) for v in f]} of {n} images leave {empty} empty "
                      f"(counts {dict(zip(DATALIST_KEYS, counts.tolist()))}).", SplitWarning, stacklevel=4)
    return counts.tolist()


def split_records(
    records: Sequence[LandmarkRecord], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, list[LandmarkRecord]]:
    """Seeded random split of ``records`` into :data:`DATALIST_KEYS` by ``fractions`` (normalised to sum 1).

    The result depends only on the records' ids, the fractions and the seed (not on the input order);
    every record lands in exactly one part, and each part is sorted by id.
    """
    ordered = sorted(records, key=lambda r: r.id)
    duplicates = duplicate_ids(output_name(r.id) for r in ordered)
    if duplicates:
        shown = {name: [ordered[k].image for k in ks] for name, ks in duplicates.items()}
        raise ValueError(f"records share ids {shown}: each needs its own to be split reproducibly and to name its "
                         "outputs.")
    permuted = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    parts, start = {}, 0
    for key, count in zip(DATALIST_KEYS, _counts(len(ordered), fractions)):
        parts[key] = sorted(permuted[start : start + count], key=lambda r: r.id)
        start += count
    return parts


def _standard_split(records: Sequence[LandmarkRecord], keys: Mapping[str, str], name: str):
    parts: dict[str, list[LandmarkRecord]] = {k: [] for k in DATALIST_KEYS}
    for r in records:
        if r.split not in keys:
            raise ValueError(f"{name}: image {r.id!r} ({r.image}) is outside the standard split {sorted(keys)}; "
                             "give split fractions instead.")
        parts[keys[r.split]].append(r)
    return parts


def build_datalist(
    dataset_dir: str | os.PathLike,
    fmt: str = "isbi2015",
    ground_truth: str | None = None,
    split: Sequence[float] | None = None,
    seed: int = 0,
    landmark_set: str | None = None,
    spacing: float | Sequence[float] | None = None,
) -> dict:
    """Datalist of a dataset, image paths absolute (see the module docstring for the layout and splits).

    Args:
        dataset_dir, fmt, ground_truth, landmark_set, spacing: as in :func:`load_records`.
        split: ``None`` for the dataset's standard split (labelme: a seeded split with
            :data:`DEFAULT_FRACTIONS`), or fractions ``(training, validation, test)`` for a seeded split of
            all records.
        seed: seed of the seeded split.

    Example::

        datalist = build_datalist("../shared/data/isbi2015")  # 150 / 150 / 100, senior annotation
        write_datalist(datalist, "isbi2015_senior.json")
    """
    records = load_records(dataset_dir, fmt, ground_truth, landmark_set, spacing)
    if not records:
        raise FileNotFoundError(f"no annotated images found in {dataset_dir} as format {fmt!r}.")
    return datalist_from_records(
        records,
        split=split,
        seed=seed,
        standard=STANDARD_SPLITS[fmt],
        name=f"{fmt} landmarks",
        description=f"{len(records)} images of {Path(dataset_dir).resolve()} ({fmt} format)",
        ground_truth=ground_truth or _default_ground_truth(fmt),
    )


def datalist_from_records(
    records: Sequence[LandmarkRecord],
    split: Sequence[float] | None = None,
    seed: int = 0,
    standard: Mapping[str, str] | None = None,
    name: str = "landmarks",
    description: str = "",
    ground_truth: str = "",
) -> dict:
    """Datalist of ``records`` (all of one landmark set), image paths absolute.

    Args:
        records: the annotated images.
        split: ``None`` for the standard split given by ``standard`` (or, without one, a seeded split with
            :data:`DEFAULT_FRACTIONS`); else fractions ``(training, validation, test)`` of a seeded split.
        seed: seed of the seeded split.
        standard: record ``split`` name -> datalist key, e.g. ``{"train": "training", ...}``.
        name, description, ground_truth: written as descriptive keys.
    """
    if not records:
        raise ValueError("no records to put in a datalist.")
    names = {r.landmark_set for r in records}
    if len(names) != 1:
        raise ValueError(f"records mix landmark sets {sorted(names)}.")
    if split is None and standard is not None:
        parts, split_info = _standard_split(records, standard, name), "standard"
    else:
        fractions = DEFAULT_FRACTIONS if split is None else tuple(float(f) for f in split)
        parts, split_info = split_records(records, fractions, seed), {"fractions": list(fractions), "seed": seed}
    lms = get_landmark_set(names.pop())
    datalist: dict = {
        "name": name,
        "description": description,
        "landmark_set": lms.name,
        "landmark_names": list(lms.abbreviations),
        "ground_truth": ground_truth,
        "split": split_info,
    }
    datalist.update({key: [r.to_item() for r in parts[key]] for key in DATALIST_KEYS})
    return datalist


def _default_ground_truth(fmt: str) -> str:
    return {"isbi2015": "senior", "isbi2015_original": "senior", "aariz": "average"}.get(fmt, "single")


def write_datalist(datalist: Mapping, path: str | os.PathLike, relative: bool = False) -> Path:
    """Write ``datalist`` as JSON to ``path`` (folders created; atomically: an existing file is replaced only by a
    complete one) and return the path.

    Args:
        datalist: as built by :func:`build_datalist`.
        path: the JSON file.
        relative: write image paths relative to the JSON's folder (a movable dataset folder); MONAI's
            ``load_decathlon_datalist`` joins them back with that folder.
    """
    path = Path(path)
    out = dict(datalist)
    if relative:
        base = os.path.abspath(path.parent)
        for key in DATALIST_KEYS:
            out[key] = [
                {**item, "image": Path(os.path.relpath(os.path.abspath(item["image"]), base)).as_posix()}
                for item in datalist.get(key, [])
            ]
    return dump_json(out, path, indent=1)

