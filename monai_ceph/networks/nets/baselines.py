# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""
Registry of the CephRes-MHNet paper's baseline networks (Table 1), for benchmarks and bundles.

Every entry of :py:data:`BASELINES` is a constructor called as ``constructor(in_channels, out_channels,
**kwargs)`` (positionally or by keyword) that returns a 2-D network mapping ``(B, in_channels, H, W)``
to ``out_channels`` heatmap logits ``(B, out_channels, H, W)``::

    from monai_ceph.networks.nets.baselines import BASELINES, get_baseline

    for name, build in BASELINES.items():
        net = build(1, 19)
    net = get_baseline("hrnet_w48_sr", in_channels=1, out_channels=19)

:py:data:`TABLE1_PARAMS` holds the parameter counts printed in the paper's Table 1 (for 19 landmarks)
and :py:data:`INPUT_DIVISOR` the factor every input spatial size must be divisible by.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch.nn as nn

from .afpf_net import AFPFNet
from .cmunext import CMUNeXt
from .hrnet import HRNetSR
from .mk_unet import MKUNet
from .monai_baselines import monai_dynunet, monai_unet
from .resunetpp import ResUNetPlusPlus

__all__ = ["BASELINES", "TABLE1_PARAMS", "INPUT_DIVISOR", "get_baseline"]

#: short name -> constructor ``(in_channels, out_channels, **kwargs)`` of a 2-D baseline.
BASELINES: dict[str, Callable[..., nn.Module]] = {
    "unet": partial(monai_unet, 2),
    "dynunet": partial(monai_dynunet, 2),
    "resunetpp": partial(ResUNetPlusPlus, 2),
    "cmunext": partial(CMUNeXt, 2),
    "mk_unet": partial(MKUNet, 2),
    "afpf_net": partial(AFPFNet, 2),
    "hrnet_w48_sr": partial(HRNetSR, 2),
}

#: parameter counts of CephRes-MHNet's Table 1 (1 input channel, 19 landmarks). MK-UNet's 5.12M is not
#: reached by any published MK-UNet width; ours is the largest published one (3.76M), see ``MKUNet``.
TABLE1_PARAMS: dict[str, float] = {
    "unet": 1.63e6,
    "dynunet": 1.93e6,
    "resunetpp": 4.06e6,
    "cmunext": 3.15e6,
    "mk_unet": 5.12e6,
    "afpf_net": 20.65e6,
    "hrnet_w48_sr": 66.67e6,
}

#: every input spatial size must be divisible by this factor (for the default configurations).
INPUT_DIVISOR: dict[str, int] = {
    "unet": 16,
    "dynunet": 8,
    "resunetpp": 8,
    "cmunext": 16,
    "mk_unet": 32,
    "afpf_net": 32,
    "hrnet_w48_sr": 32,
}


def get_baseline(name: str, in_channels: int = 1, out_channels: int = 19, **kwargs) -> nn.Module:
    """
    Build the baseline registered as ``name`` in :py:data:`BASELINES`.

    Args:
        name: short name, e.g. ``"resunetpp"``.
        in_channels: number of input channels.
        out_channels: number of output heatmaps.
        kwargs: further constructor arguments of that network.

    Raises:
        KeyError: when ``name`` is not registered (the message lists the registered names).
    """
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; registered: {', '.join(BASELINES)}.")
    return BASELINES[name](in_channels=in_channels, out_channels=out_channels, **kwargs)
