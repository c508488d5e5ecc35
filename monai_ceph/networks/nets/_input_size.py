# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Input-size checks shared by the baseline networks.

Encoder-decoder networks concatenate skip features with upsampled deeper features, so every spatial
size of the input must be divisible by the network's total downsampling factor. The check turns the
otherwise cryptic ``torch.cat`` size mismatch deep inside the decoder into a clear error up front.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["check_input_size", "DivisibleInputCheck"]


def check_input_size(x: torch.Tensor, divisor: int, spatial_dims: int, name: str) -> None:
    """
    Raise ``ValueError`` unless ``x`` is ``(B, C, *spatial)`` with ``spatial_dims`` spatial sizes that
    are all divisible by ``divisor``.

    Args:
        x: the network input.
        divisor: the network's total downsampling factor (e.g. 16 for four stride-2 stages).
        spatial_dims: number of spatial dimensions the network was built for.
        name: network name used in the message.
    """
    if x.ndim != spatial_dims + 2:
        raise ValueError(
            f"{name} expects a {spatial_dims + 2}-D input (batch, channel, *{spatial_dims} spatial dims), "
            f"got shape {tuple(x.shape)}."
        )
    spatial = tuple(x.shape[2:])
    if any(s % divisor for s in spatial):
        raise ValueError(
            f"{name} needs every spatial size divisible by {divisor}, got spatial size {spatial}; "
            f"resize or pad the input (e.g. monai.transforms.DivisiblePad(k={divisor}))."
        )


class DivisibleInputCheck:
    """
    Forward pre-hook that applies :py:func:`check_input_size` to a module's first input.

    It lets a MONAI network be used unchanged (same class, same state-dict keys) while still
    rejecting indivisible inputs with a clear message::

        net.register_forward_pre_hook(DivisibleInputCheck(16, 2, "UNet"))

    The hook is a plain picklable object, so ``torch.save(net)`` keeps working.
    """

    def __init__(self, divisor: int, spatial_dims: int, name: str) -> None:
        self.divisor = int(divisor)
        self.spatial_dims = int(spatial_dims)
        self.name = name

    def __call__(self, module: nn.Module, args: tuple) -> None:
        check_input_size(args[0], self.divisor, self.spatial_dims, self.name)
