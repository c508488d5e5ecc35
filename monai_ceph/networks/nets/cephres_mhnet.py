"""CephRes-MHNet: residual multi-head network for cephalometric landmark heatmaps (work in progress)."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["CephResMHNet", "CephresMHNet", "CephResMHNET"]


class CephResMHNet(nn.Module):
    """Placeholder; the full network lands in the next commit."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        raise NotImplementedError("CephResMHNet is being implemented.")


CephresMHNet = CephResMHNET = CephResMHNet
