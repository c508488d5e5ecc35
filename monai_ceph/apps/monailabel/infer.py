"""Landmark inference for MONAI Label, built from a bundle's configs (no torchvision: MONAI Label's own
``BundleInferTask`` imports it).

The pipeline is the bundle's, taken by id from ``train.json`` + the ``inference.json`` overlay:
:class:`SpacingFromSource` -> ``preprocessing_transforms`` -> ``network_def`` (weights from ``ckpt_path``,
``<bundle>/models/model.pt``) -> ``postprocessing`` (heatmap decoding and the mapping back to source pixels) ->
:class:`~monai_ceph.analysis.CephalometricMeasurementsd` (the measurements and classes of the predicted landmarks).
The result is JSON only: the label format of :mod:`monai_ceph.data.monailabel` plus, per landmark, its group, mm
coordinates and confidence, and a ``measurements`` block, so a prediction saved back unchanged is a valid label.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from monai.transforms import Transform
from monai.utils import convert_to_numpy
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

from monai_ceph.analysis import CephalometricMeasurementsd, determinable_measurements, measurements_record
from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.data import SpacingError, check_spacing, is_dicom, monailabel_label, read_dicom_spacing
from monai_ceph.deprecation import deprecated_alias

__all__ = ["SpacingFromSource", "SourceSpacingd", "CephLandmarkInfer"]

logger = logging.getLogger(__name__)

# where the post-processing leaves the analysis of the predicted landmarks (keys of their own, so that a bundle
# whose post-processing writes "measurements" itself does not collide with them)
MEASUREMENTS_KEY, CLASSES_KEY, REASONS_KEY = "pred_measurements", "pred_classes", "pred_measurement_reasons"


class SpacingFromSource(Transform):
    """First step of the inference pipeline: give the request its pixel spacing (mm/pixel of the source image).

    It reads the whole request dictionary (the image path under ``image_key`` and a spacing sent with the
    request under ``spacing_key``) and writes one resolved spacing, so it is a transform of the request, not a
    per-key dictionary transform. A DICOM image's header (``PixelSpacing``...) wins; else a spacing sent with the
    request (``params={"spacing": [sx, sy]}``); else ``default``. The value is written under ``spacing_key`` (which
    the pipeline then rescales to model pixels) and, kept, under ``"source_spacing"``; where it came from
    (``"dicom"``, ``"request"``, ``"conf"`` or ``"default"``) under ``"spacing_source"``. A ``"landmarks"`` entry
    of the request is dropped: inference reads none.

    Args:
        default: the spacing of images without one (the app's ``--conf spacing`` or its default).
        default_source: what ``"spacing_source"`` says when ``default`` is used.
        image_key: the key of the image file path.
        spacing_key: the key of the request's spacing, and of the resolved one.

    Raises:
        SpacingError: the default, or a spacing sent with the request, is not a positive spacing.
    """

    def __init__(
        self, default: Sequence[float], default_source: str = "default", image_key: str = "image",
        spacing_key: str = "spacing",
    ) -> None:
        self.default = [float(s) for s in check_spacing(default, "default spacing")]
        self.default_source = default_source
        self.image_key, self.spacing_key = image_key, spacing_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d.pop("landmarks", None)
        image, given = d.get(self.image_key), d.get(self.spacing_key)
        spacing, source = None, None
        if isinstance(image, str) and is_dicom(image):
            try:
                spacing, source = read_dicom_spacing(image), "dicom"
            except SpacingError as e:
                logger.warning(f"{e} Using the {'request' if given is not None else 'default'} spacing.")
        if spacing is None and given is not None:
            spacing, source = check_spacing(given, f"request {self.spacing_key!r}"), "request"
        if spacing is None:
            spacing, source = self.default, self.default_source
        d[self.spacing_key] = [float(s) for s in spacing]
        # the pipeline rescales the spacing to model pixels; the result reports the source value
        d["source_spacing"], d["spacing_source"] = list(d[self.spacing_key]), source
        return d


@deprecated_alias("SpacingFromSource")
class SourceSpacingd(SpacingFromSource):
    """Deprecated name of :class:`SpacingFromSource` (it is not a dictionary transform)."""


class CephLandmarkInfer(BasicInferTask):
    """Predict the landmarks of one radiograph (JPEG/PNG/BMP/TIFF/DICOM) with a landmark bundle.

    Args:
        config: the app settings (bundle folder, default spacing, model input size).
        seed: seed of the random weights used while the bundle has no checkpoint.

    The result's ``"measurements"`` block holds, for every measurement the landmark set determines
    (:func:`~monai_ceph.analysis.determinable_measurements`), the value computed from the predicted landmarks in
    source pixels and the source spacing, its unit, norm ``[mean, sd]`` and class (``{"SNA": {"value": 82.1,
    "unit": "deg", "norm": [82.0, 3.5], "class": "normal"}, ...}``); a value that cannot be computed is ``null``
    with its ``"reason"`` (see :func:`~monai_ceph.analysis.measure_with_reasons`).

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
            SpacingFromSource(config.spacing, config.spacing_source),
            *parser.get_parsed_content("preprocessing_transforms"),
        ]
        self.postprocessing = parser.get_parsed_content("postprocessing")
        self.measurements = CephalometricMeasurementsd(
            keys="pred_landmarks",
            spacing_key="source_spacing",
            landmark_set=self.landmark_set,
            names=determinable_measurements(self.landmark_set),
            measurements_keys=MEASUREMENTS_KEY,
            classes_keys=CLASSES_KEY,
            reasons_keys=REASONS_KEY,
        )
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
        return [self.postprocessing, self.measurements]

    def result(self, data: dict) -> dict:
        """The JSON result of a post-processed sample (see the module docstring)."""
        landmarks = convert_to_numpy(data["pred_landmarks"], dtype=np.float64).reshape(-1, 2)
        confidence = convert_to_numpy(data["pred_confidence"], dtype=np.float64).reshape(-1)
        spacing = data["source_spacing"]
        result = monailabel_label(landmarks, self.landmark_set, spacing)
        for entry, (x, y), c in zip(result["landmarks"], landmarks, confidence):
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
                "measurements": measurements_record(data[MEASUREMENTS_KEY], data[CLASSES_KEY], data[REASONS_KEY]),
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
