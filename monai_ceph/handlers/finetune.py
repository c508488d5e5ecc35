"""Fine-tuning a bundle from trained models: the released one (``"pretrained"``) or another bundle's ``models/``.

``train.json``'s ``finetune_from`` names the source; :func:`finetune_dir` resolves it, :func:`finetune_spatial_size`
gives the input size the source was trained at (the run's default), and the bundle's ``CheckpointLoader`` loads
``<source>/<variant>/model.pt`` into the network when training starts afresh (a resumed run continues from its own
checkpoint instead). :func:`adopt_side_files` gives the fine-tuned models the source's shape model and uncertainty
calibrations while they have none of their own, so the fine-tuned bundle runs the same pipeline (re-run the bundle's
``calibrating`` with a validation set of the new site to fit its own).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from monai_ceph.data.locations import DEFAULT_PRETRAINED, pretrained_dir

__all__ = ["finetune_dir", "finetune_checkpoint", "finetune_spatial_size", "adopt_side_files", "SIDE_FILES"]

SIDE_FILES = ("shape_model.json", "uncertainty_calibration.json", "two_stage_uncertainty_calibration.json")
"""What a models folder holds besides the networks: the shape model and the uncertainty calibrations."""


def finetune_dir(source: str | os.PathLike | None) -> str | None:
    """The models folder to fine-tune from: ``None``; ``"pretrained"`` (or ``"pretrained:<name>"``) for a released
    model; else a folder holding ``model.pt`` (a bundle's ``models/``). Raises ``FileNotFoundError`` naming
    ``finetune_from`` and the folder when it holds no model."""
    if source is None or str(source) == "":
        return None
    text = str(source)
    if text == "pretrained" or text.startswith("pretrained:"):
        return str(pretrained_dir(text.partition(":")[2] or DEFAULT_PRETRAINED))
    path = Path(text).expanduser()
    if not (path / "model.pt").is_file():
        raise FileNotFoundError(f"--finetune_from {text}: no model.pt in this folder; pass a trained bundle's "
                                "models/ folder or 'pretrained' (the released model).")
    return str(path)


def finetune_checkpoint(folder: str | None, variant: str = "") -> str | None:
    """``<folder>/<variant>/model.pt`` (the global model for ``variant`` ``""``, the local one for ``"local"``), or
    ``None`` without a folder. Raises ``FileNotFoundError`` when the source has no model of that stage."""
    if folder is None:
        return None
    path = Path(folder, variant, "model.pt")
    if not path.is_file():
        raise FileNotFoundError(f"--finetune_from {folder}: no {Path(variant, 'model.pt')} for this stage.")
    return str(path)


def finetune_spatial_size(folder: str | None) -> list[int] | None:
    """The input size the source was trained at (its ``model.json``), or ``None``."""
    settings = Path(folder, "model.json") if folder is not None else None
    if settings is None or not settings.is_file():
        return None
    return [int(s) for s in json.loads(settings.read_text())["spatial_size"]]


def adopt_side_files(folder: str | None, ckpt_dir: str | os.PathLike, variant: str = "") -> list[str]:
    """Copy the :data:`SIDE_FILES` of ``<folder>/<variant>`` that ``ckpt_dir`` lacks into it; returns the copies."""
    if folder is None:
        return []
    copied = []
    for name in SIDE_FILES:
        source, target = Path(folder, variant, name), Path(ckpt_dir, name)
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied.append(str(target))
    return copied
