# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""
MONAI's own ``UNet`` and ``DynUNet`` configured as the CephRes-MHNet paper's baselines (Table 1).

Nothing is re-implemented here: the factories return unmodified :py:class:`monai.networks.nets.UNet`
and :py:class:`monai.networks.nets.DynUNet` instances (same classes, same state-dict keys) whose
configuration reproduces the paper's parameter counts for a 1-channel input and 19 landmark heatmaps:

===========  =======================================================  ==============  ========
network      configuration                                            parameters      Table 1
===========  =======================================================  ==============  ========
UNet         channels (16, 32, 64, 128, 256), strides (2, 2, 2, 2),   1,633,304       1.63M
             num_res_units=2, MONAI defaults otherwise
DynUNet      filters (32, 64, 128, 256), kernels 3, strides           1,926,803       1.93M
             (1, 2, 2, 2), MONAI defaults otherwise
===========  =======================================================  ==============  ========

Both output ``out_channels`` heatmap logits at the input resolution. The input's spatial sizes must
be divisible by the product of the strides (16 for the UNet, 8 for the DynUNet; the paper's
``MODEL_SPATIAL_SIZE`` (576, 736) satisfies both); a forward pre-hook raises ``ValueError`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from monai.networks.nets import DynUNet, UNet

from ._input_size import DivisibleInputCheck

__all__ = ["monai_unet", "monai_dynunet", "MONAI_UNET_CONFIG", "MONAI_DYNUNET_CONFIG"]

#: keyword arguments of :py:class:`monai.networks.nets.UNet` for the Table 1 baseline.
MONAI_UNET_CONFIG: dict = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2}

#: keyword arguments of :py:class:`monai.networks.nets.DynUNet` for the Table 1 baseline.
MONAI_DYNUNET_CONFIG: dict = {
    "filters": (32, 64, 128, 256),
    "kernel_size": (3, 3, 3, 3),
    "strides": (1, 2, 2, 2),
    "upsample_kernel_size": (2, 2, 2),
}


def _downsampling(strides: Sequence[int | Sequence[int]]) -> int:
    """Total isotropic downsampling factor of a stride list (anisotropic strides use their maximum)."""
    return prod(max(s) if isinstance(s, Sequence) else int(s) for s in strides)


def monai_unet(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 19, **kwargs) -> UNet:
    """
    MONAI :py:class:`~monai.networks.nets.UNet` with the Table 1 configuration (1.63M parameters).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output heatmaps (landmarks).
        kwargs: overrides of :py:data:`MONAI_UNET_CONFIG` or any other ``UNet`` argument
            (``norm``, ``act``, ``dropout``, ...).
    """
    config = {**MONAI_UNET_CONFIG, **kwargs}
    net = UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **config)
    net.register_forward_pre_hook(DivisibleInputCheck(_downsampling(config["strides"]), spatial_dims, "UNet"))
    return net


def monai_dynunet(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 19, **kwargs) -> DynUNet:
    """
    MONAI :py:class:`~monai.networks.nets.DynUNet` with the Table 1 configuration (1.93M parameters).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output heatmaps (landmarks).
        kwargs: overrides of :py:data:`MONAI_DYNUNET_CONFIG` or any other ``DynUNet`` argument
            (``norm_name``, ``act_name``, ``dropout``, ``res_block``, ...).
    """
    config = {**MONAI_DYNUNET_CONFIG, **kwargs}
    net = DynUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **config)
    net.register_forward_pre_hook(DivisibleInputCheck(_downsampling(config["strides"]), spatial_dims, "DynUNet"))
    return net
