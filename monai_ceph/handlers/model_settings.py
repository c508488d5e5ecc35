"""The settings a model was trained with (spatial size, input scaling, landmark set, heatmap codec) in a sidecar ``model.json``
beside its checkpoint, written when training starts and checked before evaluation or inference."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data.json_io import dump_json, dumps_json

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["ModelSettingsWriter", "check_model_settings", "model_settings"]

# settings that older model.json files lack: how a warning names them, and what it suggests
_LATER = {
    "input_scaling": ("the input scaling",
                      " (configs/fixed_size.json for a model trained with the paper's fixed-size resize)"),
}


def model_settings(
    spatial_size: Sequence[int],
    landmark_set: Any,
    codec: Any,
    input_scaling: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """A JSON-able record of the settings that must match between training and use of a model: the network
    input ``spatial_size``, how images are scaled to it (``input_scaling``, the bundle's id of that name:
    ``"physical <mm> mm/px"`` or ``"fixed size"``; left out when ``None``), the landmark set's name and the codec's
    class and scalar settings, plus any ``extra`` JSON-able entries (e.g. ``{"local": {"patch_size": 19.2, ...}}``,
    the local stage's patch geometry; left out when ``None``)."""
    scalars = (int, float, str, bool, type(None))
    return {
        "spatial_size": [int(s) for s in spatial_size],
        **({} if input_scaling is None else {"input_scaling": str(input_scaling)}),
        "landmark_set": landmark_set if isinstance(landmark_set, str) or landmark_set is None else landmark_set.name,
        "codec": {
            "name": type(codec).__name__,
            **{k: v for k, v in sorted(vars(codec).items()) if not k.startswith("_") and isinstance(v, scalars)},
        },
        **json.loads(dumps_json(dict(extra or {}))),  # plain JSON values, as they read back from the file
    }


class ModelSettingsWriter:
    """Writes :func:`model_settings` to ``filename`` (atomically) when the trainer starts, so the settings travel
    with the checkpoints saved beside it.

    Args:
        filename: the sidecar, e.g. ``<ckpt_dir>/model.json``.
        spatial_size, landmark_set, codec, input_scaling, extra: the training's settings (see
            :func:`model_settings`).
        model: what the model is, e.g. ``{"kind": "phantom demo"}`` or ``{"kind": "trained"}``
            (:func:`monai_ceph.handlers.provenance.model_provenance` reads it back).
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        spatial_size: Sequence[int],
        landmark_set: Any,
        codec: Any,
        input_scaling: str | None = None,
        extra: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
    ):
        self.filename = filename
        self.settings = model_settings(spatial_size, landmark_set, codec, input_scaling, extra)
        if model is not None:  # which model this is (monai_ceph.handlers.provenance): not a setting to check
            self.settings["model"] = dict(model)

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Any = None) -> None:
        dump_json(self.settings, self.filename)


def check_model_settings(
    filename: str | os.PathLike,
    spatial_size: Sequence[int],
    landmark_set: Any,
    codec: Any,
    input_scaling: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict | None:
    """Compare this run's settings with the ``model.json`` the model was trained with.

    Raises ``ValueError`` naming the file, each setting that differs and both values; a missing file (a
    checkpoint from before the sidecar existed) only warns, and so does a ``model.json`` that does not record the
    input scaling or an ``extra`` entry (written before it was recorded). Returns the trained settings, or ``None``.
    """
    if not os.path.isfile(filename):
        warnings.warn(f"{filename} not found: the model's training settings cannot be checked against this run.")
        return None
    try:
        with open(filename) as f:
            trained = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{filename}: cannot read the model's training settings: {e}") from e
    current = model_settings(spatial_size, landmark_set, codec, input_scaling, extra)
    # settings recorded later than the file was written: warned about, not checked
    for key in sorted(({"input_scaling"} | set(extra or {})) & set(current) - set(trained)):
        name, hint = _LATER.get(key, (repr(key), ""))
        warnings.warn(f"{filename} does not record {name} the model was trained with: this run uses "
                      f"{current[key]!r}{hint}.")
        del current[key]
    differ = [
        f"{key} {trained.get(key)!r} (this run: {current[key]!r})" for key in current if trained.get(key) != current[key]
    ]
    if differ:
        raise ValueError(
            f"{filename}: the model was trained with " + "; ".join(differ) + ". Run with the trained settings "
            "(e.g. --spatial_size, configs/fixed_size.json) or retrain."
        )
    return trained
