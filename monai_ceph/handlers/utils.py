"""Helpers shared by the landmark handlers: reading one decollated engine output item."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from monai.data import decollate_batch
from monai.utils import IgniteInfo, ImageMetaKey, convert_to_numpy, min_version, optional_import

from monai_ceph.data import LandmarkSet, atomic_write_text, get_landmark_set
from monai_ceph.data.ids import output_name

from .output_lock import hold_output_folder

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "ItemHandler",
    "engine_output",
    "decollated_items",
    "landmark_labels",
    "item_points",
    "item_covariance",
    "item_id",
    "item_source_filename",
    "check_formats",
    "write_csv",
]


def engine_output(engine: Any) -> Any:
    """``engine.state.output``, each item completed by the keys of the matching ``engine.state.batch`` item it lacks.

    MONAI's evaluators keep the dataset keys (``"landmarks"``, ``"spacing"``, ``"id"``, ...) in the batch and put only
    the network's keys and the postprocessing's new keys in the output; the landmark handlers need both. Output values
    win over batch values. Outputs that are not (lists of) dicts matching the batch are returned unchanged.
    """
    output, batch = engine.state.output, getattr(engine.state, "batch", None)
    if isinstance(output, Mapping) and isinstance(batch, Mapping):
        return {**batch, **output}
    if (
        isinstance(output, list)
        and isinstance(batch, list)
        and len(output) == len(batch)
        and all(isinstance(o, Mapping) and isinstance(b, Mapping) for o, b in zip(output, batch))
    ):
        return [{**b, **o} for b, o in zip(batch, output)]
    return output


def decollated_items(output: Any) -> list[Mapping]:
    """``engine.state.output`` as a list of per-image dicts (decollating a batch dict when needed)."""
    if isinstance(output, Mapping):
        output = decollate_batch(output)
    if not isinstance(output, Sequence) or not all(isinstance(i, Mapping) for i in output):
        raise TypeError(f"expected the engine output to be a (list of) dict(s), got {type(output).__name__}.")
    return list(output)


def landmark_labels(landmark_set: str | LandmarkSet | None, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Abbreviations and names of ``n`` landmarks: from the set, or ``L1..Ln`` when ``landmark_set`` is None."""
    if landmark_set is None:
        labels = tuple(f"L{i + 1}" for i in range(n))
        return labels, labels
    lset = get_landmark_set(landmark_set)
    if len(lset) != n:
        raise ValueError(f"got {n} landmarks but the {lset.name} landmark set has {len(lset)}.")
    return lset.abbreviations, lset.names


def item_points(item: Mapping, key: str, ndim: int = 2) -> np.ndarray:
    """``item[key]`` as a float64 array with ``ndim`` dims (``(N, 2)`` landmarks, ``(N,)`` confidence, ``(2,)``)."""
    if key not in item:
        raise KeyError(f"engine output item has no {key!r} (keys: {sorted(map(str, item))}).")
    arr = np.asarray(convert_to_numpy(item[key], wrap_sequence=True), dtype=np.float64)
    if arr.ndim != ndim or (ndim == 2 and arr.shape[-1] != 2):
        raise ValueError(f"engine output {key!r} has shape {arr.shape}, expected {'(N, 2)' if ndim == 2 else ndim}-d.")
    return arr


def item_covariance(item: Mapping, key: str, n: int) -> np.ndarray:
    """``item[key]`` as ``(n, 2, 2)`` float64 covariances (e.g. ``"cov_mm"``)."""
    if key not in item:
        raise KeyError(f"engine output item has no {key!r} (keys: {sorted(map(str, item))}).")
    arr = np.asarray(convert_to_numpy(item[key], wrap_sequence=True), dtype=np.float64)
    if arr.shape != (n, 2, 2):
        raise ValueError(f"engine output {key!r} has shape {arr.shape}, expected ({n}, 2, 2).")
    return arr


def item_source_filename(item: Mapping, image_key: str = "image") -> str | None:
    """The source file of the item's image, from its MetaTensor meta or ``<image_key>_meta_dict``; else None."""
    meta = getattr(item.get(image_key), "meta", None) or item.get(f"{image_key}_meta_dict") or {}
    filename = meta.get(ImageMetaKey.FILENAME_OR_OBJ)
    if isinstance(filename, (list, tuple)):  # not decollated: a single image per item is expected
        filename = filename[0] if len(filename) == 1 else None
    return str(filename) if filename else None


def item_id(item: Mapping, id_key: str | None = "id", image_key: str = "image") -> str:
    """A file-name-safe identifier of the item: ``item[id_key]``, else the stem of the image's source file."""
    if id_key is not None and item.get(id_key) is not None:
        value = item[id_key]
        value = value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
        return output_name(value)
    filename = item_source_filename(item, image_key)
    if filename is None:
        raise KeyError(
            f"cannot name the output: the engine output item has no {id_key!r} and no {image_key!r} meta "
            f"{ImageMetaKey.FILENAME_OR_OBJ!r}."
        )
    return output_name(image=filename)


class ItemHandler:
    """Base of the handlers that act on every decollated output item at ``ITERATION_COMPLETED``.

    Subclasses implement :meth:`handle`; items are ``engine.state.output`` completed by the batch keys (see
    :func:`engine_output`) and mapped by ``output_transform``. A subclass that writes files sets ``output_dir``: the
    folder is then locked for the run (:func:`~monai_ceph.handlers.output_lock.hold_output_folder`), so a second
    run writing there at the same time fails instead of mixing its files with this one's.
    """

    output_dir: str | os.PathLike | None = None

    def __init__(self, output_transform: Callable = lambda x: x, name: str | None = None) -> None:
        self.output_transform = output_transform
        self.logger = logging.getLogger(name)
        self._name = name

    def attach(self, engine) -> None:
        """
        Args:
            engine: Ignite Engine, it can be a trainer, validator or evaluator.
        """
        if self._name is None:
            self.logger = engine.logger
        if self.output_dir is not None:
            hold_output_folder(engine, self.output_dir)
        if not engine.has_event_handler(self, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        """
        Args:
            engine: Ignite Engine, it can be a trainer, validator or evaluator.
        """
        for item in decollated_items(self.output_transform(engine_output(engine))):
            self.handle(item)

    def handle(self, item: Mapping) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement handle(item).")


def check_formats(formats: Sequence[str] | str, what: str = "output") -> tuple[str, ...]:
    """The lower-cased file formats of a per-image writer, refusing any but ``"json"`` and ``"csv"``."""
    checked = tuple(f.lower() for f in ((formats,) if isinstance(formats, str) else formats))
    unknown = set(checked) - {"json", "csv"}
    if unknown:
        raise ValueError(f"unsupported {what} file formats {sorted(unknown)}; use 'json' and/or 'csv'.")
    return checked


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows) -> str:
    """Write ``rows`` (mappings over ``columns``) as CSV with a header, atomically; returns the path."""
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return str(atomic_write_text(path, table.getvalue()))
