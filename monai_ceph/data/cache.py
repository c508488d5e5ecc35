"""The pre-processing cache of the bundles: loaded without unpickling arbitrary objects, keyed by the transforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover
    from numpy.core.multiarray import _reconstruct

from monai.data import MetaTensor, PersistentDataset
from monai.data.utils import pickle_hashing
from monai.utils import MetaKeys, SpaceKeys, TraceKeys

__all__ = ["CACHE_SAFE_GLOBALS", "SafePersistentDataset"]

CACHE_SAFE_GLOBALS: list[Any] = [
    MetaTensor,
    MetaKeys,
    SpaceKeys,
    TraceKeys,
    np.ndarray,
    np.dtype,
    _reconstruct,  # how numpy pickles an array (meta "spatial_shape")
    *{type(np.dtype(t)) for t in (np.bool_, np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64)},
]
"""What a cached item may hold besides tensors, containers and primitives: ``MetaTensor`` with its metadata
(MONAI's key enums, small numpy arrays). ``torch.load`` refuses every other global, so a planted payload never runs."""


class SafePersistentDataset(PersistentDataset):
    """
    MONAI's ``PersistentDataset`` with two guarantees:

    - the cache is read with ``torch.load(weights_only=True)`` allowing only :data:`CACHE_SAFE_GLOBALS`
      (``MetaTensor`` and its metadata), so a cache file never executes code; a file that holds anything else is
      refused by torch and recomputed (MONAI deletes an unloadable cache file and computes the item again);
    - the cache key includes a hash of every deterministic transform's settings (``hash_transform`` is MONAI's
      ``pickle_hashing`` of the transform objects, their parameters included), so changing a CLAHE clip limit, the
      size or an NLM parameter never reuses the images pre-processed with the old ones.

    :meth:`build_cache` pre-processes the items not cached yet before a run starts, with a progress bar (what the
    bundle's training does), instead of during the first epoch without one.

    Args:
        data, transform, cache_dir: as ``PersistentDataset``.
        kwargs: other ``PersistentDataset`` arguments (``weights_only`` is always True).
    """

    def __init__(self, data, transform, cache_dir, hash_transform=pickle_hashing, **kwargs: Any) -> None:
        if not kwargs.pop("weights_only", True):
            raise ValueError("SafePersistentDataset always loads its cache with weights_only=True.")
        super().__init__(data, transform, cache_dir=cache_dir, hash_transform=hash_transform, weights_only=True, **kwargs)

    def __getitem__(self, index):
        with torch.serialization.safe_globals(CACHE_SAFE_GLOBALS):
            return super().__getitem__(index)

    def _cache_file(self, item) -> Path:
        """The cache file of datalist ``item`` (the name ``PersistentDataset`` gives it)."""
        return Path(self.cache_dir) / f"{self.hash_func(item).decode('utf-8')}{self.transform_hash}.pt"

    def build_cache(self, progress: bool = True, desc: str = "caching") -> int:
        """Pre-process and save every item that is not cached yet; return how many this process computed.

        Under ``torch.distributed`` each rank computes its share of the missing items, then all wait for each
        other, so training starts with the cache complete on every rank.

        Args:
            progress: show a tqdm bar (on a terminal only, so logs and captured test output stay clean); the
                bundle passes ``@is_main_rank``, one bar however many ranks.
            desc: the bar's label.
        """
        if self.cache_dir is None:
            return 0
        missing = [item for item in self.data if not self._cache_file(item).is_file()]
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            missing = missing[dist.get_rank():: dist.get_world_size()]
        if missing:
            from tqdm import tqdm  # a dependency of the package (setup.cfg); imported on use

            for item in tqdm(missing, desc=desc, unit="image", disable=None if progress else True):
                with torch.serialization.safe_globals(CACHE_SAFE_GLOBALS):
                    self._cachecheck(item)
        if distributed:
            dist.barrier()
        return len(missing)
