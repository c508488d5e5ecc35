"""Which model made a result, and what a user must be warned of.

Every output (the API result, the command line's table and JSON, the bundle's landmark JSON and overlays, the MONAI
Label result) carries the record of :func:`model_provenance` and the warnings of :func:`result_warnings`, so a
phantom-demo model or an implausible shape is never reported as if it were a trusted detection.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

__all__ = [
    "PHANTOM_DEMO",
    "TRAINED",
    "RELEASED",
    "PHANTOM_WARNING",
    "SHAPE_IMPLAUSIBLE_P",
    "model_provenance",
    "model_description",
    "implausible_shape",
    "result_warnings",
]

PHANTOM_DEMO, TRAINED, RELEASED, UNKNOWN = "phantom demo", "trained", "released", "unknown"
PHANTOM_WARNING = "phantom demo model: not for real radiographs"

SHAPE_IMPLAUSIBLE_P = 1e-3
"""A shape whose Mahalanobis distance under the model's shape model has a chi^2 tail probability below this is
flagged as implausible (for 19 points, 34 degrees of freedom: a distance above 8.08)."""

_DEMO_SPATIAL_SIZE = [96, 120]  # train.json's demo_spatial_size: how an older model.json of the demo is recognised


def model_provenance(model_json: str | os.PathLike | None) -> dict[str, Any]:
    """The ``"model"`` record of a ``model.json``: ``{"kind": "released", "name", "version"}`` for a released
    model, ``{"kind": "trained"}`` for a model trained by the user, ``{"kind": "phantom demo"}`` for the main job's
    demo. A ``model.json`` written before the record existed is a phantom demo when trained at the demo size
    (96 x 120), else trained; no ``model.json`` at all gives ``{"kind": "unknown"}``."""
    if model_json is None or not os.path.isfile(model_json):
        return {"kind": UNKNOWN}
    try:
        with open(model_json) as f:
            settings = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{model_json}: cannot read the model's settings: {e}") from e
    record = settings.get("model")
    if isinstance(record, dict) and record.get("kind") in (PHANTOM_DEMO, TRAINED, RELEASED):
        return dict(record)
    return {"kind": PHANTOM_DEMO if settings.get("spatial_size") == _DEMO_SPATIAL_SIZE else TRAINED}


def model_description(model: dict[str, Any]) -> str:
    """One line: ``"released model cephres-isbi2015 1.0.0"``, ``"model trained by the user"``, ``"phantom demo
    model"``."""
    kind = model.get("kind", UNKNOWN)
    if kind == RELEASED:
        return f"released model {model.get('name', '?')} {model.get('version', '')}".rstrip()
    if kind == TRAINED:
        return "model trained by the user"
    if kind == PHANTOM_DEMO:
        return "phantom demo model"
    return "model of unknown origin (no model.json)"


def implausible_shape(distance: float | None, num_present: int, p: float = SHAPE_IMPLAUSIBLE_P) -> bool:
    """Whether a shape's Mahalanobis ``distance`` (``shape_plausibility`` of ``ShapeRefined``) with
    ``num_present`` points is beyond the chi^2 ``1 - p`` quantile of its ``2 n - 4`` degrees of freedom."""
    if distance is None or not math.isfinite(float(distance)) or num_present < 3:
        return False
    from scipy.stats import chi2

    return float(distance) ** 2 > float(chi2.isf(p, 2 * num_present - 4))


def result_warnings(model: dict[str, Any], plausibility: Any = None, landmarks: Any = None) -> list[str]:
    """The warnings of one result: the phantom-demo model's, and an implausible shape's (``plausibility`` the
    shape distance, ``landmarks`` ``(N, 2)`` to count the present points)."""
    warnings = [PHANTOM_WARNING] if model.get("kind") == PHANTOM_DEMO else []
    if plausibility is not None and landmarks is not None:
        distance = float(np.asarray(plausibility, dtype=float).reshape(()))
        present = int(np.isfinite(np.asarray(landmarks, dtype=float)).all(-1).sum())
        if implausible_shape(distance, present):
            warnings.append(
                f"implausible landmark configuration (shape distance {distance:.1f} beyond the "
                f"{1 - SHAPE_IMPLAUSIBLE_P:.1%} limit of the shape model): check that the image is a lateral "
                "cephalogram and review every point"
            )
    return warnings
