"""MONAI's ``CheckpointLoader`` that first checks the file is a checkpoint of this network, so a missing, empty,
foreign or mis-sized checkpoint is refused in one line naming the file and the fault (a
:class:`CheckpointError`) instead of ``EOFError`` or a state-dict dump of hundreds of keys."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from monai.handlers import CheckpointLoader

from monai_ceph.errors import InputError

__all__ = ["CheckpointError", "check_checkpoint", "ModelLoader"]

_SHOWN = 3  # keys named in a message


class CheckpointError(InputError):
    """A checkpoint file is missing, empty, not a PyTorch checkpoint, or holds weights of another network."""


def _names(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def _check_state(path: str, key: str | None, state, network: torch.nn.Module, strict: bool, strict_shape: bool) -> None:
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = f"entry {key!r}" if key else f"its content (entries: {_names(state)})"
        raise CheckpointError(f"{path}: {what} is not a state dict of tensors; not a model checkpoint.")
    own = network.state_dict()
    missing, unexpected = set(own) - set(state), set(state) - set(own)
    if strict and (missing or unexpected):
        what = type(network).__name__
        raise CheckpointError(
            f"{path}: not a checkpoint of this {what}: {len(missing)} of its {len(own)} weights missing "
            f"({_names(missing) or 'none'}), {len(unexpected)} unexpected ({_names(unexpected) or 'none'})."
        )
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if strict_shape and shapes:
        first = shapes[0]
        raise CheckpointError(
            f"{path}: {len(shapes)} weight(s) of another shape, e.g. {first!r} {list(state[first].shape)} in the "
            f"file, {list(own[first].shape)} in this {type(network).__name__} (a model of another landmark set "
            "or network size?)."
        )


def check_checkpoint(path: str | os.PathLike, load_dict: Mapping, strict: bool = True, strict_shape: bool = True
                     ) -> None:
    """Raise a :class:`CheckpointError` naming ``path`` unless it is a non-empty PyTorch checkpoint holding, for
    every network of ``load_dict``, a state dict with its keys (when ``strict``) and shapes (when ``strict_shape``).

    Like ``CheckpointLoader``, a file holding only a state dict is taken as the one object's when ``load_dict`` has
    one entry.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file; train the bundle first or give the path of a "
                              "trained model.pt (ckpt_path).")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: an empty file (0 bytes), not a model checkpoint.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - EOFError, UnpicklingError, zip errors...: all say "not a checkpoint"
        reason = " ".join(str(e).split()[:30]) or type(e).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {reason}).") from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a model checkpoint.")
    for key, obj in load_dict.items():
        if not isinstance(obj, torch.nn.Module):
            continue
        if key not in checkpoint and len(load_dict) > 1:
            raise CheckpointError(f"{path}: no entry {key!r} in the checkpoint (entries: {_names(checkpoint)}).")
        # as CheckpointLoader: a file without the entry is the one object's state dict
        state, entry = (checkpoint[key], key) if key in checkpoint else (checkpoint, None)
        _check_state(path, entry, state, obj, strict, strict_shape)


class ModelLoader(CheckpointLoader):
    """``CheckpointLoader`` that runs :func:`check_checkpoint` (with its ``strict`` and ``strict_shape``) before
    loading."""

    def __call__(self, engine) -> None:
        check_checkpoint(self.load_path, self.load_dict, self.strict, self.strict_shape)
        super().__call__(engine)
