"""Landmark inference for MONAI Label, built from a bundle's configs (no torchvision: MONAI Label's own
``BundleInferTask`` imports it).

The pipeline is the bundle's, taken by id from ``train.json`` + the ``inference.json`` overlay:
``preprocessing_transforms`` -> ``network_def`` (weights from ``ckpt_path``, ``<bundle>/models/model.pt``) ->
``postprocessing`` (heatmap decoding and the mapping back to source pixels). The result is JSON only: the
label format of :mod:`monai_ceph.data.monailabel` plus, per landmark, its group, mm coordinates and confidence,
so a prediction saved back unchanged is a valid label.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from monai.utils import convert_to_numpy
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.apps.monailabel.images import DICOM_SUFFIXES
from monai_ceph.data import SpacingError, check_spacing, monailabel_label, read_dicom_spacing

__all__ = ["SourceSpacingd", "CephLandmarkInfer"]

logger = logging.getLogger(__name__)

class SourceSpacingd:
    """First step of the inference pipeline: give the request its ``"spacing"`` (mm/pixel of the source image).

    A DICOM image's header (``PixelSpacing``...) wins; else a ``"spacing"`` sent with the request
    (``params={"spacing": [sx, sy]}``); else the app's default. The choice is recorded under
    ``"spacing_source"`` (``"dicom"``, ``"request"``, ``"conf"`` or ``"default"``) and the value under
    ``"source_spacing"`` (``"spacing"`` itself is rescaled to model pixels by the pipeline). A ``"landmarks"`` entry of
    the request is dropped: inference reads none.
    """

    def __init__(self, default: Sequence[float], default_source: str = "default") -> None:
        self.default = [float(s) for s in check_spacing(default, "default spacing")]
        self.default_source = default_source

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        d.pop("landmarks", None)
        image = d.get("image")
        spacing, source = None, None
        if isinstance(image, str) and image.lower().endswith(DICOM_SUFFIXES):
            try:
                spacing, source = read_dicom_spacing(image), "dicom"
            except SpacingError as e:
                logger.warning(f"{e} Using the {'request' if d.get('spacing') is not None else 'default'} spacing.")
        if spacing is None and d.get("spacing") is not None:
            spacing, source = check_spacing(d["spacing"], "request 'spacing'"), "request"
        if spacing is None:
            spacing, source = self.default, self.default_source
        d["spacing"] = [float(s) for s in spacing]
        # the pipeline rescales "spacing" to model pixels; the result reports the source value
        d["source_spacing"], d["spacing_source"] = list(d["spacing"]), source
        return d


class CephLandmarkInfer(BasicInferTask):
    """Predict the landmarks of one radiograph (JPEG/PNG/BMP/TIFF/DICOM) with a landmark bundle.

    Args:
        config: the app settings (bundle folder, default spacing, model input size).
        seed: seed of the random weights used while the bundle has no checkpoint.

    Without ``<bundle>/models/model.pt`` the network keeps random weights, and every result says so:
    ``"checkpoint": null, "untrained": true``. A checkpoint written later (e.g. by the train task) is loaded on
    the next request (MONAI Label reloads when the file's mtime changes).
    """

    def __init__(self, config: CephAppConfig, seed: int = 0) -> None:
        parser = config.parser()
        self.landmark_set = config.landmark_set(parser)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            network = parser.get_parsed_content("network_def")
        self.preprocessing = [
            SourceSpacingd(config.spacing, config.spacing_source),
            *parser.get_parsed_content("preprocessing_transforms"),
        ]
        self.postprocessing = parser.get_parsed_content("postprocessing")
        self.groups = {a: g for g, members in self.landmark_set.groups.items() for a in members}
        super().__init__(
            path=parser.get_parsed_content("ckpt_path"),
            network=network,
            type=InferType.OTHERS,
            labels=list(self.landmark_set.abbreviations),
            dimension=2,
            description=f"{len(self.landmark_set)} {self.landmark_set.name} landmarks with the {config.name} bundle "
            f"(input {config.spatial_size[0]}x{config.spatial_size[1]}); JSON result",
            model_state_dict="model",
            load_strict=True,
        )

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return self.preprocessing

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return [self.postprocessing]

    def result(self, data: dict) -> dict:
        """The JSON result of a post-processed sample (see the module docstring)."""
        points = convert_to_numpy(data["pred_landmarks"], dtype=np.float64).reshape(-1, 2)
        confidence = convert_to_numpy(data["pred_confidence"], dtype=np.float64).reshape(-1)
        spacing = data["source_spacing"]
        result = monailabel_label(points, self.landmark_set, spacing)
        for entry, (x, y), c in zip(result["landmarks"], points, confidence):
            entry["group"] = self.groups.get(entry["abbreviation"])
            entry["x_mm"] = None if np.isnan(x) else float(x * spacing[0])
            entry["y_mm"] = None if np.isnan(y) else float(y * spacing[1])
            entry["confidence"] = None if np.isnan(c) else float(c)
        shape = getattr(data.get("image"), "meta", {}).get("spatial_shape")
        checkpoint = self.get_path()
        result.update(
            {
                "spacing_source": data["spacing_source"],
                "image_size": None if shape is None else [int(s) for s in np.asarray(shape).reshape(-1)],
                "coordinates": "source image pixels (x, y), integer = pixel centre; *_mm = pixels x spacing",
                "checkpoint": checkpoint,
                "untrained": checkpoint is None,
            }
        )
        return result

    def writer(self, data: dict[str, Any], extension=None, dtype=None) -> tuple[Any, Any]:
        """JSON only; with ``save_label`` the result is also written to a ``.json`` file MONAI Label stores."""
        result = self.result(data)
        if not data.get("save_label"):
            return None, result
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(result, f)
        return f.name, dict(result)
