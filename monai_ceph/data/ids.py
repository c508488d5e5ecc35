"""Item ids: the names of an item's outputs (``<output_dir>/<id>.json``, ``.csv``, ``.png``), one per item.

Two items with one id write the same files: the second overwrites the first's results while a report counts both.
Ids are compared as the output files are named: after :func:`output_name` and ignoring case (``A.json`` and
``a.json`` are one file on macOS and Windows).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["output_name", "unique_file_ids", "duplicate_ids"]


def output_name(image_id=None, image: str | os.PathLike | None = None) -> str:
    """The file-name-safe name of an item's outputs: ``image_id`` with path separators as ``_``, else the stem of
    ``image`` (``.nii.gz`` counts as one suffix). ``ValueError`` when neither is given."""
    if image_id is not None:
        return str(image_id).replace(os.sep, "_").replace("/", "_")
    if image is None:
        raise ValueError("an item needs an id or an image file to name its outputs.")
    name = os.path.basename(str(image))
    for _ in range(2 if name.endswith(".gz") else 1):
        name = os.path.splitext(name)[0]
    return name


def unique_file_ids(files: Sequence[str | os.PathLike]) -> list[str]:
    """One id per file, unique (case ignored) and deterministic: the stem where no other file shares it, else the
    stem and the suffix (``001.jpg``, ``001.dcm`` -> ``001_jpg``, ``001_dcm``); where that is still taken (``a.png``
    beside ``a_png.png``, whose stem is ``a_png``) a counter follows (``a_png_2``). A file's own stem wins over a
    made-up name, so adding files never renames a file whose stem was unique."""
    paths = [Path(f) for f in files]
    stems = Counter(p.stem.casefold() for p in paths)
    ids: list[str | None] = [p.stem if stems[p.stem.casefold()] == 1 else None for p in paths]
    taken = {i.casefold() for i in ids if i is not None}
    for k in sorted((k for k, i in enumerate(ids) if i is None), key=lambda k: str(paths[k])):
        base = f"{paths[k].stem}_{paths[k].suffix.lstrip('.').lower()}"
        candidate, n = base, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate.casefold())
        ids[k] = candidate
    return [str(i) for i in ids]


def duplicate_ids(names: Iterable[str]) -> dict[str, list[int]]:
    """``{name: [positions]}`` of the names given more than once (case ignored), in order of first appearance."""
    positions: dict[str, list[int]] = defaultdict(list)
    first: dict[str, str] = {}
    for k, name in enumerate(names):
        key = name.casefold()
        first.setdefault(key, name)
        positions[key].append(k)
    return {first[key]: ks for key, ks in positions.items() if len(ks) > 1}
