"""Checks that a local (second-stage) checkpoint belongs with the global one before both are loaded."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

__all__ = ["check_local_checkpoint"]


def _state_dict(path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    # MONAI's CheckpointSaver writes a single object's state dict as is, several under their names
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    return state


def _mismatch(state: Mapping[str, torch.Tensor], network: nn.Module) -> str | None:
    """The first difference between a checkpoint's state dict and ``network``'s, or ``None``."""
    expected = network.state_dict()
    for key, value in expected.items():
        if key not in state:
            return f"it has no {key!r}"
        if tuple(state[key].shape) != tuple(value.shape):
            return f"{key!r} has shape {tuple(state[key].shape)} where the network has {tuple(value.shape)}"
    extra = sorted(set(state) - set(expected))
    return f"it has {extra[0]!r}, which the network lacks" if extra else None


def check_local_checkpoint(
    global_checkpoint: str | os.PathLike,
    local_checkpoint: str | os.PathLike,
    global_network: nn.Module,
    local_network: nn.Module,
    num_landmarks: int | None = None,
    landmark_set: str | None = None,
) -> None:
    """Refuse a local checkpoint that does not predict the global checkpoint's landmarks.

    Both networks are built for the same landmark set (``num_landmarks`` output heatmaps); each checkpoint must fit
    its network exactly. A checkpoint trained for another landmark set (another number of heatmaps) or for another
    architecture does not, and the error names both files.

    Raises:
        FileNotFoundError: a checkpoint is missing.
        ValueError: a checkpoint does not fit its network.
    """
    what = f"the {num_landmarks} landmarks" if num_landmarks is not None else "the landmarks"
    if landmark_set is not None:
        what += f" of {landmark_set!r}"
    for role, path, network, other in (
        ("global", global_checkpoint, global_network, local_checkpoint),
        ("local", local_checkpoint, local_network, global_checkpoint),
    ):
        fault = _mismatch(_state_dict(path), network)
        if fault is not None:
            raise ValueError(
                f"{role} checkpoint {str(path)!r} does not match {what} that the two-stage configuration uses with "
                f"{'local' if role == 'global' else 'global'} checkpoint {str(other)!r}: {fault}. Train both "
                "stages on the same landmark set (local_train.json over the same train.json settings); a local stage "
                "trained with coarse-point priors (local_prior.json, 1 + K input channels) needs that overlay here too."
            )
