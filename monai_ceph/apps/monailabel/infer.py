"""Landmark inference for MONAI Label, built from a bundle's configs (no torchvision: MONAI Label's own
``BundleInferTask`` imports it).

The pipeline is the bundle's, taken by id from ``train.json`` + the ``inference.json`` overlay:
:class:`SpacingFromSource` -> ``preprocessing_transforms`` -> ``network_def`` (weights from ``ckpt_path``,
``<bundle>/models/model.pt``) run by the bundle's ``inferer`` (with ``"orientation"``: on the radiograph turned
upright, :class:`~monai_ceph.inferers.OrientationInferer`) -> ``postprocessing`` (heatmap decoding, per-landmark uncertainty, the mapping back to
source pixels, and the bundle's ``measurements`` of the predicted landmarks). A bundle whose post-processing gives
no uncertainty gets the app's :class:`~monai_ceph.shape.LandmarkUncertaintyd` after it.
The result is JSON only: the label format of :mod:`monai_ceph.data.monailabel` plus, per landmark, its group, mm
coordinates, confidence and uncertainty, and a ``measurements`` block, so a prediction saved back unchanged is a
valid label.

With ``"fixed"`` / ``"missing"`` in the request (:mod:`.refit`), the task re-fits the other landmarks from the
bundle's shape model and the image's cached evidence instead (no network pass when the image is cached).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from monai.transforms import Transform
from monai.utils import convert_to_numpy
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

from monai_ceph.analysis import determinable_measurements, measurements_record
from monai_ceph.apps.monailabel.cache import FileWatch, LRUCache, file_stamp
from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.apps.monailabel.errors import SetupError
from monai_ceph.apps.monailabel.images import image_size
from monai_ceph.apps.monailabel.refit import Evidence, LandmarkEdit, covariance_px, parse_edit, refit_landmarks
from monai_ceph.data import SpacingError, check_spacing, is_dicom, monailabel_label, read_dicom_spacing
from monai_ceph.deprecation import deprecated_alias
from monai_ceph.handlers.provenance import model_description, model_provenance, result_warnings
from monai_ceph.inferers.orientation import orientation_warning
from monai_ceph.shape import LandmarkUncertaintyd, ShapeModel

__all__ = ["SpacingFromSource", "SourceSpacingd", "CephLandmarkInfer"]

logger = logging.getLogger(__name__)

# where the bundle's post-processing leaves the uncertainty (LandmarkUncertaintyd's defaults)
SIGMA_KEY, COV_KEY, CALIBRATED_KEY = "sigma_mm", "cov_mm", "uncertainty_calibrated"
SHAPE_MODEL_FILE, CALIBRATION_FILE = "shape_model.json", "uncertainty_calibration.json"
# a models folder's files: the pipeline is rebuilt when one of them changes
MODEL_FILES = ("model.pt", "model.json", "local/model.pt", "local/model.json", SHAPE_MODEL_FILE, CALIBRATION_FILE,
               "local/two_stage_uncertainty_calibration.json")
CACHE_SIZE = 8


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


def _bundle_file(parser, key: str, name: str) -> str:
    """The bundle's config id ``key`` (a file path) when it has one, else ``<ckpt_dir>/<name>``."""
    if key in parser:
        return str(parser.get_parsed_content(key))
    return os.path.join(str(parser.get_parsed_content("ckpt_dir")), name)


def _optional(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _matrix(value: np.ndarray) -> list | None:
    return None if not np.isfinite(value).all() else value.tolist()


class CephLandmarkInfer(BasicInferTask):
    """Predict the landmarks of one radiograph (JPEG/PNG/BMP/TIFF/DICOM) with a landmark bundle, or re-fit them
    after an annotator's edit.

    Args:
        config: the app settings (bundle folder, default spacing, model input size).
        seed: seed of the random weights used while the bundle has no checkpoint.
        cache_size: how many images' evidence the re-fit keeps in memory.

    Every result entry has, besides the label format's keys, ``group``, ``x_mm`` / ``y_mm``, ``confidence`` (the
    heatmap peak), ``sigma_mm`` (per-axis SD of the point's error, mm), ``covariance_px`` (``[[xx, xy], [xy, yy]]``
    in source pixels^2, for drawing an ellipse) and ``covariance_mm`` (source mm^2), and ``fixed``; the result's
    ``"calibrated"`` says whether ``<bundle>/models/uncertainty_calibration.json`` scaled the covariances.

    The ``"measurements"`` block holds, for every measurement the landmark set determines
    (:func:`~monai_ceph.analysis.determinable_measurements`), what the bundle's ``measurements`` post-processing step
    computed from the predicted landmarks in source pixels and the source spacing: value, unit, norm ``[mean,
    sd]`` and class (``{"SNA": {"value": 82.1, "unit": "deg", "norm": [82.0, 3.5], "class": "normal"}, ...}``); a
    value that cannot be computed is ``null`` with its ``"reason"``.

    A request with ``"fixed": {"Me": [x, y], ...}`` (source pixels) and/or ``"missing": ["Ar", ...]`` is a re-fit
    (:func:`~.refit.refit_landmarks`): the fixed points are returned exactly as given (``"fixed": true``), the
    missing ones ``null``, and the others conditioned on them by ``<bundle>/models/shape_model.json`` fused with
    the image's heatmap evidence, with their new uncertainties and measurements. The evidence of the last
    ``cache_size`` images (key: image file, request spacing, checkpoint and calibration files) is kept from their
    last network pass, so a re-fit of a cached image runs no network (``"cached": true``; ``"refit_ms"`` is the
    time of the re-fit itself). Without a shape model the other points keep their prediction (``"shape_model":
    null``).

    Without ``<bundle>/models/model.pt`` the network keeps random weights, and every result says so:
    ``"checkpoint": null, "untrained": true``. A checkpoint written later (e.g. by the train task) is loaded on
    the next request (MONAI Label reloads when the file's mtime changes).
    """

    def __init__(self, config: CephAppConfig, seed: int = 0, cache_size: int = CACHE_SIZE) -> None:
        parser = config.parser()
        self.landmark_set = config.landmark_set(parser)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            network = parser.get_parsed_content("network_def")
        self.preprocessing = [
            SpacingFromSource(config.spacing, config.spacing_source),
            *parser.get_parsed_content("preprocessing_transforms"),
        ]
        self.measurements = parser.get_parsed_content("measurements")
        self.determinable = determinable_measurements(self.landmark_set)
        self.shape_model_file = _bundle_file(parser, "shape_model_file", SHAPE_MODEL_FILE)
        self.calibration_file = _bundle_file(parser, "calibration_file", CALIBRATION_FILE)
        codec = parser.get_parsed_content("codec")
        # the bundle's own inferer: with "orientation" (inference.json) the network runs on the radiograph turned
        # upright and the post-processing records which way it faced
        self.bundle_inferer = parser.get_parsed_content("inferer")
        first = parser.get_parsed_content("postprocessing")
        # the bundle resolves its calibration file when its config is parsed: parse again when that file changes
        self.postprocessing = FileWatch(
            self.calibration_file, self._setup(lambda _: config.parser().get_parsed_content("postprocessing")), first
        )
        self.uncertainty = FileWatch(self.calibration_file, self._setup(
            lambda path: LandmarkUncertaintyd(keys="pred", codec=codec, calibration=path, source_spacing=True)
        ))
        self.shape_model = FileWatch(self.shape_model_file, self._setup(self._load_shape_model))
        self.cache = LRUCache(cache_size)
        self.app_config = config
        self._pipeline: tuple[tuple, Any] | None = None  # (the model files' stamps, the LandmarkDetector over them)
        self.groups = {a: g for g, members in self.landmark_set.groups.items() for a in members}
        # the bundle's own checkpoint once there is one (a training round writes it), else the released model's
        own = str(config.own_models_dir / "model.pt")
        paths = list(dict.fromkeys([parser.get_parsed_content("ckpt_path"), own]))
        super().__init__(
            path=paths,
            network=network,
            type=InferType.OTHERS,
            labels=list(self.landmark_set.abbreviations),
            dimension=2,
            description=f"{len(self.landmark_set)} {self.landmark_set.name} landmarks with the {config.name} bundle "
            f"(input {config.spatial_size[0]}x{config.spatial_size[1]}); JSON result; re-fit with params "
            "'fixed'/'missing'",
            model_state_dict="model",
            load_strict=True,
        )

    # -- the bundle's files -----------------------------------------------------------------------------------------

    @staticmethod
    def _setup(load: Callable) -> Callable:
        """``load`` with its failure as a :class:`~.errors.SetupError` naming the file."""

        def checked(path):
            try:
                return load(path)
            except SetupError:
                raise
            except Exception as e:
                raise SetupError(f"{path}: cannot be used: {e}") from e

        return checked

    def _load_shape_model(self, path: str | None) -> ShapeModel | None:
        if path is None:
            return None
        model = ShapeModel.load(path)
        try:
            model.check_landmark_set(self.landmark_set)
        except ValueError as e:
            raise SetupError(f"shape model {path}: {e}") from None
        return model

    # -- the network pass -------------------------------------------------------------------------------------------

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return self.preprocessing

    def inferer(self, data=None) -> Callable:
        return self.bundle_inferer

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return [self.postprocessing()[0], self._uncertainty_if_missing]

    def _uncertainty_if_missing(self, data: dict) -> dict:
        """The app's :class:`~monai_ceph.shape.LandmarkUncertaintyd` for a bundle whose post-processing gives no
        uncertainty (placed after it: the item's spacing is the source spacing by then)."""
        if COV_KEY in data:
            return data
        transform, stamp = self.uncertainty()
        data = transform(data)
        data[CALIBRATED_KEY] = stamp is not None
        return data

    def _measurements_record(self, data: Mapping) -> dict:
        """The determinable measurements of the bundle's ``measurements`` step's output keys in ``data``."""
        m = self.measurements
        values, classes = data[m.measurements_keys[0]], data[m.classes_keys[0]]
        reasons = data[m.reasons_keys[0]] if m.reasons_keys else None
        return measurements_record({n: values[n] for n in self.determinable if n in values}, classes, reasons)

    def _landmarks(self, landmarks, confidence, cov_mm, spacing, fixed=()) -> dict:
        """The label of ``landmarks`` ``(K, 2)`` source pixels with every entry's extra keys."""
        result = monailabel_label(landmarks, self.landmark_set, spacing)
        cov_px = covariance_px(cov_mm, spacing)
        sigma = np.sqrt(np.trace(cov_mm, axis1=-2, axis2=-1) / 2)
        for i, entry in enumerate(result["landmarks"]):
            x, y = landmarks[i]
            entry["group"] = self.groups.get(entry["abbreviation"])
            entry["x_mm"] = None if np.isnan(x) else float(x * spacing[0])
            entry["y_mm"] = None if np.isnan(y) else float(y * spacing[1])
            entry["confidence"] = _optional(confidence[i])
            entry["sigma_mm"] = _optional(sigma[i])
            entry["covariance_px"] = _matrix(cov_px[i])
            entry["covariance_mm"] = _matrix(cov_mm[i])
            entry["fixed"] = i in fixed
        return result

    def result(self, data: dict) -> dict:
        """The JSON result of a post-processed sample (see the class docstring)."""
        landmarks = convert_to_numpy(data["pred_landmarks"], dtype=np.float64).reshape(-1, 2)
        confidence = convert_to_numpy(data["pred_confidence"], dtype=np.float64).reshape(-1)
        cov = convert_to_numpy(data[COV_KEY], dtype=np.float64).reshape(-1, 2, 2)
        spacing = [float(s) for s in data["source_spacing"]]
        result = self._landmarks(landmarks, confidence, cov, spacing)
        shape = getattr(data.get("image"), "meta", {}).get("spatial_shape")
        if shape is None and isinstance(data.get("image"), str):  # the bundle's pipeline read the file itself
            shape = image_size(data["image"])
        checkpoint = self.get_path()
        model = model_provenance(None if checkpoint is None else os.path.join(os.path.dirname(checkpoint), "model.json"))
        result.update(
            {
                "model": model,
                "model_description": "untrained network (random weights)" if checkpoint is None
                else model_description(model),
                "warnings": result_warnings(model) + [w for w in [orientation_warning(data.get("orientation"))] if w],
                "orientation": data.get("orientation"),
                "spacing_source": data["spacing_source"],
                "image_size": None if shape is None else [int(s) for s in np.asarray(shape).reshape(-1)],
                "coordinates": "source image pixels (x, y), integer = pixel centre; *_mm = pixels x spacing",
                "checkpoint": checkpoint,
                "untrained": checkpoint is None,
                "calibrated": bool(data.get(CALIBRATED_KEY, False)),
                "measurements": self._measurements_record(data),
            }
        )
        return result

    @staticmethod
    def _label_file(result: dict) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(result, f)
        return f.name

    def writer(self, data: dict[str, Any], extension=None, dtype=None) -> tuple[Any, Any]:
        """JSON only; with ``save_label`` the result is also written to a ``.json`` file MONAI Label stores."""
        result = self.result(data)
        return (self._label_file(result) if data.get("save_label") else None), dict(result)

    # -- the re-fit -------------------------------------------------------------------------------------------------

    def _cache_key(self, request: Mapping) -> tuple:
        spacing = json.dumps(request.get("spacing"), sort_keys=True, default=str)
        return file_stamp(request.get("image")), spacing, file_stamp(self.get_path()), file_stamp(self.calibration_file)

    def pipeline(self):
        """The bundle's own inference pipeline (:class:`~monai_ceph.apps.LandmarkDetector` over the models folder of
        the checkpoint in use: the best pipeline it holds), rebuilt when one of its files changes; ``None`` while
        there is no checkpoint (random weights: the single-stage network pass of this task)."""
        checkpoint = self.get_path()
        if checkpoint is None:
            return None
        models = os.path.dirname(checkpoint)
        stamps = tuple(file_stamp(os.path.join(models, name)) for name in MODEL_FILES)
        if self._pipeline is None or self._pipeline[0] != stamps:
            from monai_ceph.apps.detector import LandmarkDetector

            detector = self._setup(lambda path: LandmarkDetector.from_bundle(
                self.app_config.bundle, models_dir=path, device=self.app_config.device))(models)
            self._pipeline = (stamps, detector)
        return self._pipeline[1]

    def _infer(self, request, callbacks=None) -> tuple[str | None, dict, Evidence | None]:
        """The network pass: the bundle's pipeline, or this task's own with random weights while untrained; with the
        evidence a re-fit starts from (the network's points and covariances, before any shape refinement)."""
        detector = self.pipeline()
        if detector is None:
            label, result = super().__call__(request, callbacks)
            plain = result.get("landmark_set") == self.landmark_set.name  # not a skip_writer request
            return label, result, Evidence.from_result(result) if plain else None
        begin = time.perf_counter()
        data = self.preprocessing[0](dict(request))  # SpacingFromSource
        out = detector.outputs(data["image"], spacing=data["spacing"])[0]
        data.update({k: v for k, v in out.items() if k not in ("image", "spacing")})
        if str(request.get("skip_writer", "")).lower() in ("1", "true", "yes"):
            return None, data, None
        result = self.result(data)
        result.update({"pipeline": detector.pipeline, "warnings": detector.warnings(out)})
        result["label_names"] = self.labels
        result["latencies"] = {"total": round(time.perf_counter() - begin, 2)}
        evidence = Evidence.from_result(result)
        if "unrefined_pred_landmarks" in out:  # shape-refined: the re-fit conditions the network's own points
            evidence = Evidence(convert_to_numpy(out["unrefined_pred_landmarks"], dtype=np.float64).reshape(-1, 2),
                                convert_to_numpy(out["unrefined_cov_mm"], dtype=np.float64).reshape(-1, 2, 2),
                                evidence.confidence, evidence.spacing, evidence.result)
        return (self._label_file(result) if data.get("save_label") else None), result, evidence

    def __call__(self, request, callbacks=None):
        edit = parse_edit(request, self.landmark_set)
        if edit is not None:
            return self.refit(request, edit)
        label, result, evidence = self._infer(request, callbacks)
        if evidence is not None:
            self.cache.put(self._cache_key(request), evidence)
        return label, result

    def evidence(self, request: Mapping) -> tuple[Evidence, bool]:
        """The cached evidence of the request's image, or that of a network pass now; and whether it was cached."""
        key = self._cache_key(request)
        evidence = self.cache.get(key)
        if evidence is not None:
            return evidence, True
        plain = {k: v for k, v in request.items() if k not in ("fixed", "missing", "save_label")}
        _, _, evidence = self._infer(plain)
        self.cache.put(key, evidence)
        return evidence, False

    def refit(self, request: Mapping, edit: LandmarkEdit) -> tuple[str | None, dict]:
        """The result of a re-fit request (see the class docstring)."""
        begin = time.perf_counter()
        evidence, cached = self.evidence(request)
        start = time.perf_counter()
        base = evidence.result
        edit.check_inside(base.get("image_size") or image_size(request["image"]), self.landmark_set)
        shape_model, _ = self.shape_model()
        landmarks, cov, flagged = refit_landmarks(evidence, edit, shape_model)
        confidence = evidence.confidence.copy()
        confidence[list(edit.fixed) + list(edit.missing)] = np.nan
        result = self._landmarks(landmarks, confidence, cov, evidence.spacing.tolist(), fixed=edit.fixed)
        for entry, flag in zip(result["landmarks"], flagged):
            entry["flagged"] = bool(flag)
        keys = ("spacing_source", "image_size", "coordinates", "checkpoint", "untrained", "calibrated", "model",
                "model_description", "warnings", "orientation")
        result.update({k: base[k] for k in keys})
        m = self.measurements
        item = {m.keys[0]: landmarks} if m.spacing_key is None else {m.keys[0]: landmarks, m.spacing_key: evidence.spacing}
        result["measurements"] = self._measurements_record(m(item))
        result["shape_model"] = None if shape_model is None else {
            "file": self.shape_model_file,
            "landmark_set": shape_model.landmark_set,
            "num_shapes": shape_model.num_shapes,
            "modes": len(shape_model.variances),
        }
        end = time.perf_counter()
        result.update(
            {
                "refit_ms": round(1000 * (end - start), 2),
                "cached": cached,
                "label_names": self.labels,
                "latencies": {"refit": round(end - start, 4), "total": round(end - begin, 2)},
            }
        )
        return (self._label_file(result) if request.get("save_label") else None), result
