"""A data loader for batch runs (evaluation, inference) that skips an item it cannot read or pre-process.

One bad file (truncated JPEG, broken DICOM, an image too large) must not stop a folder of good ones: the item is
left out of its batch with one log line naming it and the reason, the others are processed, and the failures are
kept in :attr:`FailureTolerantDataLoader.failures` (``{"id", "image", "error"}``) for
:class:`monai_ceph.handlers.BatchSummary` to report (``failed.json``) and to turn into a non-zero exit status.

The failure travels inside the batch from the worker process that met it, so the list is complete with any
``num_workers``. Training keeps MONAI's ``DataLoader``: a datalist it trains on is checked before it starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from monai.data import DataLoader, list_data_collate
from torch.utils.data import Dataset as _TorchDataset

__all__ = ["FAILURE_KEY", "FailureTolerantDataLoader", "failure_reason"]

FAILURE_KEY = "__failed__"
"""The key of the placeholder item a failed load returns (``{FAILURE_KEY: {"id", "image", "error"}}``); a datalist
entry that holds it (the reason, e.g. from :func:`monai_ceph.data.image_folder_datalist`) is reported as failed
without being loaded."""

logger = logging.getLogger(__name__)

# messages MONAI wraps the user's error in: the reason is in the exception they were raised from
_WRAPPERS = ("applying transform", "Failed to evaluate", "cannot find a suitable reader")


def failure_reason(error: BaseException, name: str | None = None) -> str:
    """The one line that says why an item failed.

    The innermost error of MONAI's wrapping (``applying transform ...``); its type is named unless it is a
    ``ValueError`` or ``FileNotFoundError`` (the package's own messages, which state the fault), and a leading
    ``"<name>: "`` is dropped (the caller names the file once).
    """
    inner = error
    while (inner.__cause__ or inner.__context__) is not None and (
        not str(inner) or any(w in str(inner) for w in _WRAPPERS)
    ):
        inner = inner.__cause__ or inner.__context__
    text = str(inner)
    if "cannot find a suitable reader" in text and "Traceback (most recent call last):" in text:
        # LoadImage tried the given reader first, then its defaults: the given reader's error is the first
        # traceback's last line ("PIL.UnidentifiedImageError: cannot identify image file '...'")
        first = text.split("Traceback (most recent call last):")[1]
        return " ".join([line for line in first.splitlines() if line.strip()][-1].split())
    text = " ".join(text.split()) or type(inner).__name__
    if name and text.startswith(f"{name}: "):
        text = text[len(name) + 2:]
    if not isinstance(inner, (ValueError, FileNotFoundError)):
        text = f"{type(inner).__name__}: {text}"
    return text


class _TolerantItems(_TorchDataset):
    """``dataset[i]``, or a placeholder ``{FAILURE_KEY: {...}}`` when reading or pre-processing item ``i`` fails."""

    def __init__(self, dataset: Sequence, image_key: str, id_key: str) -> None:
        self.dataset = dataset
        self.image_key = image_key
        self.id_key = id_key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = _source_item(self.dataset, index)
        if FAILURE_KEY in item:  # the datalist already found it bad (e.g. an unreadable DICOM header): not loaded
            return self._failure(item, index, str(item[FAILURE_KEY]))
        try:
            return self.dataset[index]
        except Exception as error:  # any fault of one input: reported, the batch goes on
            return self._failure(item, index, error)

    def _failure(self, item: Mapping, index: int, error: BaseException | str) -> dict:
        image = item.get(self.image_key)
        image = os.fspath(image) if isinstance(image, (str, os.PathLike)) else str(image)
        reason = error if isinstance(error, str) else failure_reason(error, image)
        return {FAILURE_KEY: {"id": str(item.get(self.id_key, index)), "image": image, "error": reason}}


def _source_item(dataset: Any, index: int) -> Mapping:
    """The datalist entry ``index`` of a MONAI dataset (its ``data``), ``{}`` when it has none."""
    data = getattr(dataset, "data", None)
    try:
        item = data[index] if data is not None else {}
    except (IndexError, KeyError, TypeError):
        item = {}
    return item if isinstance(item, Mapping) else {}


class _SplitFailures:
    """Collate the good items of a batch with ``collate_fn``; return ``(batch or None, failures)``."""

    def __init__(self, collate_fn: Callable) -> None:
        self.collate_fn = collate_fn

    def __call__(self, items: list) -> tuple[Any, list[dict]]:
        failures = [i[FAILURE_KEY] for i in items if isinstance(i, Mapping) and FAILURE_KEY in i]
        good = [i for i in items if not (isinstance(i, Mapping) and FAILURE_KEY in i)]
        return (self.collate_fn(good) if good else None), failures


class FailureTolerantDataLoader(DataLoader):
    """
    MONAI's ``DataLoader`` that leaves out of its batches every item whose loading or pre-processing raised: it
    logs ``"<image>: skipped (<reason>)"`` once (naming the item's id) and appends ``{"id", "image", "error"}`` to
    :attr:`failures`. A batch whose items all failed is not yielded, so an epoch can have fewer iterations than
    ``len(loader)``: attach :class:`monai_ceph.handlers.BatchSummary` to the engine, which ends the epoch there
    and reports the failures.

    In a bundle config, in place of ``DataLoader``::

        "dataloader": {"_target_": "monai_ceph.data.FailureTolerantDataLoader", "dataset": "@dataset", ...}

    Args:
        dataset: the dataset (its ``data`` entries name a failed item by ``id_key`` and ``image_key``).
        image_key: key of the image path in the datalist entries.
        id_key: key of the item id in the datalist entries.
        kwargs: ``DataLoader`` arguments (``collate_fn`` is applied to the good items of each batch).
    """

    def __init__(self, dataset: Sequence, image_key: str = "image", id_key: str = "id", **kwargs: Any) -> None:
        collate_fn = kwargs.pop("collate_fn", list_data_collate)
        super().__init__(_TolerantItems(dataset, image_key, id_key), collate_fn=_SplitFailures(collate_fn), **kwargs)
        self.failures: list[dict] = []

    def __iter__(self) -> Iterator:
        self.failures = []
        for batch, failures in super().__iter__():
            for failure in failures:
                logger.warning(f"{failure['image']}: skipped (id {failure['id']!r}): {failure['error']}")
            self.failures.extend(failures)
            if batch is not None:
                yield batch
