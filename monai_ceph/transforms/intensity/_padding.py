"""Reflect padding of the last two dimensions that, like ``numpy.pad(mode="reflect")``, allows any pad width."""

from __future__ import annotations

import torch

__all__ = ["reflect_pad_2d"]


def _reflect_index(size: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Source indices of a reflect-padded axis of length ``size``: mirror about the edge samples, repeated."""
    idx = torch.arange(-before, size + after, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)


def reflect_pad_2d(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Pad the last two dims of ``x`` by ``(top, bottom, left, right)`` in numpy's ``"reflect"`` mode.

    ``torch.nn.functional.pad(mode="reflect")`` needs each pad to be smaller than the dimension; this gather
    has no such limit and gives the same values as ``numpy.pad(..., mode="reflect")``.
    """
    top, bottom, left, right = pad
    rows = _reflect_index(x.shape[-2], top, bottom, x.device)
    cols = _reflect_index(x.shape[-1], left, right, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)
