"""``LandmarkDetector``: the three-line Python API over a bundle's own inference configs.

::

    from monai_ceph import LandmarkDetector
    det = LandmarkDetector.from_bundle("bundles/cephres")
    result = det("scan.dcm")            # or det(array, spacing=(0.1, 0.1)), or det([...]) for a batch

The workflow stays in JSON: the detector parses ``train.json`` + ``inference.json`` with MONAI's ``ConfigParser``
(which run the best pipeline the models folder holds: the local stage when there is a local model, shape refinement
when there is a shape model, calibrated uncertainty when there is a calibration) and runs the config's own
``evaluator`` (its ``preprocessing``, ``inferer``, ``postprocessing`` and ``prepare_batch``) over the given images;
the networks are built and their weights loaded once.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.engines import Evaluator
from monai.transforms import Compose, LoadImage, LoadImaged
from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data import RadiographReader, image_folder_datalist
from monai_ceph.data.locations import DEFAULT_PRETRAINED, default_bundle_dir, pretrained_dir
from monai_ceph.data.readers import check_spacing
from monai_ceph.handlers.provenance import model_provenance, result_warnings
from monai_ceph.handlers.utils import decollated_items, engine_output
from monai_ceph.inferers.orientation import orientation_warning

from .result import LandmarkResult

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["LandmarkDetector", "default_bundle_dir"]

CONFIGS = ("train.json", "inference.json")


def _trained_settings(model_json: str) -> dict:
    if not os.path.isfile(model_json):
        return {}
    with open(model_json) as f:
        return json.load(f)


class LandmarkDetector:
    """Detects the landmarks of lateral cephalograms with a trained bundle.

    Build it with :meth:`from_bundle`; call it on an image file (DICOM, PNG, JPEG, BMP), an in-memory ``(x, y)``
    or ``(C, x, y)`` array in MONAI's order (``np.asarray(pil_image).T`` for a PIL image), or a list of them.
    One input gives a :class:`LandmarkResult`, a list gives a list.

    Args:
        parser: a ``ConfigParser`` holding the bundle's inference configs (see :meth:`from_bundle`).
        two_stage: run the second stage (sets the config's ``two_stage``); default: the config's (inference.json:
            when the models folder holds a local model).
    """

    def __init__(self, parser: ConfigParser, two_stage: bool | None = None) -> None:
        self.parser = parser
        if two_stage is not None:
            parser["two_stage"] = bool(two_stage)
        _parsed(parser, "initialize")  # determinism + the model settings check (models/model.json)
        self.two_stage: bool = bool(_parsed(parser, "two_stage"))
        for check in ("local#check_checkpoints", "local#check_settings"):  # disabled when single-stage
            _parsed(parser, check)
        self.evaluator: Evaluator = parser.get_parsed_content("evaluator")
        loaders = ["model_loader"] + (["local#model_loader"] if self.two_stage else [])
        for loader in loaders:  # the weights are loaded once, here
            parser.get_parsed_content(loader)(self.evaluator)
        self.landmark_set = parser.get_parsed_content("landmark_set")
        self.preprocessing: Compose = parser.get_parsed_content("preprocessing")
        self.model: dict[str, Any] = model_provenance(parser.get_parsed_content("model_settings_file"))
        """Which model this is (``{"kind": "released" | "trained" | "phantom demo", ...}``)."""
        self._outputs: list[dict] = []
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._collect)

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | os.PathLike | None = None,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        two_stage: bool | None = None,
        output_dir: str | os.PathLike | None = None,
        batch_size: int | None = None,
        shape_refine: bool | None = None,
        models_dir: str | os.PathLike | None = None,
        **override: Any,
    ) -> LandmarkDetector:
        """A detector running ``bundle_dir``'s inference configs with the best pipeline its models hold.

        Args:
            bundle_dir: the bundle folder (``configs/``, ``models/``); default: the package's own bundle.
            checkpoint: the (global) model weights; default ``<models_dir>/model.pt``.
            device: e.g. ``"cpu"``, ``"cuda:0"``; default: the config's (CUDA when available).
            two_stage: run the second stage; default: when ``<models_dir>/local/model.pt`` exists.
            output_dir: when given, the bundle's writers also write the landmark JSON/CSV, overlays and
                measurements of every image under it (``<output_dir>/landmarks``, ``overlays``, ...).
            batch_size: images per forward pass; default 4 (1 for two-stage, whose patches vary in size).
            shape_refine: refine the points with the shape model; default: when ``<models_dir>/shape_model.json``
                exists (``shape_refine.json``).
            models_dir: the trained models (``model.pt``, ``model.json``, ``local/``, ``shape_model.json``,
                calibrations); default ``<bundle_dir>/models``, or, when that holds no trained model and no
                ``checkpoint`` is given, the released model (:meth:`from_pretrained`).
            override: any other config value (``spatial_size=[576, 736]``, ...). The input size and landmark set
                default to those the model was trained with (its ``model.json``).

        Raises:
            FileNotFoundError: no ``configs/`` in ``bundle_dir``, or no trained model (naming the file).
            ValueError: settings that differ from the model's ``model.json``.
        """
        root = Path(default_bundle_dir() if bundle_dir is None else bundle_dir)
        configs = root / "configs"
        if not (configs / "inference.json").is_file():
            raise FileNotFoundError(
                f"{root}: not a bundle folder (no configs/inference.json); pass the folder written by "
                "`monai-ceph bundle DIR`, or bundle_dir=None for the packaged one."
            )
        models = Path(models_dir) if models_dir is not None else root / "models"
        if models_dir is None and checkpoint is None and not (models / "model.pt").is_file():
            try:  # no trained model of its own: the released one
                models = pretrained_dir()
            except FileNotFoundError:
                pass
        ckpt = Path(checkpoint) if checkpoint is not None else models / "model.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(
                f"{ckpt}: no trained model; train the bundle first (python -m monai.bundle run training "
                f"--config_file {configs / 'train.json'} --bundle_root {root}) or pass checkpoint=PATH."
            )
        if two_stage is None:  # inference.json decides so too; the batch size depends on it
            two_stage = (models / "local" / "model.pt").is_file()
        parser = ConfigParser()
        parser.read_config([str(configs / name) for name in CONFIGS])
        settings: dict[str, Any] = {
            "bundle_root": str(root),
            "ckpt_dir": str(models),
            "ckpt_path": str(ckpt),
            "model_settings_file": str(ckpt.parent / "model.json"),
            "inference_data": [],  # filled per call
            "num_workers": 0,
            "handlers": [],  # the weights are loaded once in __init__, not on every run
            "dataloader#batch_size": batch_size or (1 if two_stage else 4),
        }
        settings["local#ckpt_dir"] = str(models / "local")
        settings["two_stage"] = bool(two_stage)
        if shape_refine is not None:
            settings["shape_refine"] = bool(shape_refine)
        trained = _trained_settings(settings["model_settings_file"])
        if "spatial_size" in trained:
            settings["spatial_size"] = trained["spatial_size"]
            parser["spatial_size"] = trained["spatial_size"]
            settings["demo"] = trained["spatial_size"] == parser.get_parsed_content("demo_spatial_size")
        settings["landmark_set"] = trained.get("landmark_set") or "isbi2015"
        if device is not None:
            settings["device"] = f"$torch.device('{torch.device(device)}')"
        if output_dir is None:
            settings["validate#writers"] = []
        else:
            settings["results_dir"] = str(output_dir)
        settings.update(override)
        for key, value in settings.items():
            parser[key] = value
        return cls(parser)

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_PRETRAINED, **kwargs: Any) -> LandmarkDetector:
        """A detector running a released model shipped with the package (default ``"isbi2015"``: trained on the
        150 ISBI 2015 training images; its ``MODEL_CARD.md`` says how and how well) with the packaged bundle's
        inference configs; ``kwargs`` as :meth:`from_bundle`."""
        return cls.from_bundle(models_dir=pretrained_dir(name), **kwargs)

    @property
    def pipeline(self) -> list[str]:
        """The steps this detector runs, in order: ``"global stage"``, ``"local stage"``, ``"shape refinement"``,
        ``"calibrated uncertainty"`` (each only when it runs; the bundle's ``pipeline``)."""
        return list(self.parser.get_parsed_content("pipeline"))

    def _collect(self, engine) -> None:
        self._outputs.extend(decollated_items(engine_output(engine)))

    def _items(self, inputs: Sequence[Any], spacing: Any) -> list[dict]:
        items = []
        for i, x in enumerate(inputs):
            if isinstance(x, (str, os.PathLike)):
                items.extend(image_folder_datalist(x, spacing=spacing) if Path(x).is_file() else [None])
                if items[-1] is None:
                    raise FileNotFoundError(f"{x}: no such image file; pass a DICOM, PNG, JPEG or BMP radiograph.")
                continue
            if spacing is None:
                raise ValueError(f"input {i} is an array: pass spacing=(sx, sy) in mm/pixel.")
            image = torch.as_tensor(np.asarray(x), dtype=torch.float32)
            if image.ndim == 2:
                image = image[None]
            if image.ndim != 3:
                raise ValueError(f"input {i}: an image array must be (x, y) or (C, x, y), got shape {tuple(x.shape)}.")
            pixel = [float(s) for s in check_spacing(spacing, f"input {i}")]
            meta = {"filename_or_obj": f"array_{i}", "spatial_shape": np.asarray(image.shape[1:])}
            items.append({"image": MetaTensor(image, meta=meta), "spacing": pixel, "id": f"array_{i}"})
        ids = Counter(d["id"] for d in items)
        for i, d in enumerate(items):  # files of one stem in different folders: keep their results apart
            d["id"] = d["id"] if ids[d["id"]] == 1 else f"{d['id']}_{i}"
        return items

    def _run(self, items: list[dict]) -> list[dict]:
        loaded = [d for d in items if isinstance(d["image"], str)]
        arrays = [d for d in items if not isinstance(d["image"], str)]
        loader = self.evaluator.data_loader
        dataset = getattr(loader.dataset, "dataset", loader.dataset)  # inside a FailureTolerantDataLoader's wrapper
        self._outputs = []
        for batch, transform in ((loaded, self.preprocessing), (arrays, self._array_preprocessing())):
            if not batch:
                continue
            dataset.data, dataset.transform = batch, transform
            self.evaluator.state.epoch_length = len(self.evaluator.data_loader)
            try:
                self.evaluator.run()
            except Exception as e:
                _raise_unreadable(batch, e)
                raise
            failures = getattr(loader, "failures", [])  # a tolerant loader skipped it: the caller asked for it
            if failures:
                raise ValueError(
                    f"{failures[0]['image']}: cannot read this image ({failures[0]['error']}); "
                    "pass a DICOM, PNG, JPEG or BMP radiograph."
                )
        order = {d["id"]: i for i, d in enumerate(items)}
        return sorted(self._outputs, key=lambda d: order[str(d["id"])])

    def _array_preprocessing(self) -> Compose:
        """The config's preprocessing without its ``LoadImaged`` (in-memory images are already loaded)."""
        return Compose([t for t in self.preprocessing.transforms if not isinstance(t, LoadImaged)])

    def outputs(self, inputs: Any, spacing: Sequence[float] | float | None = None) -> list[dict]:
        """The bundle's post-processed output items of ``inputs`` (a file, an array or a list of them), as its
        writers see them (``pred_landmarks``, ``cov_mm``, ``measurements``, ...); :meth:`__call__` wraps them in
        :class:`LandmarkResult` s."""
        return self._run(self._items(list(inputs) if isinstance(inputs, (list, tuple)) else [inputs], spacing))

    def warnings(self, out: dict) -> list[str]:
        """The warnings of one output item (:func:`~monai_ceph.handlers.provenance.result_warnings`)."""
        unrefined = out.get("unrefined_pred_landmarks")
        points = None if unrefined is None else np.asarray(torch.as_tensor(unrefined).detach().cpu(), dtype=float)
        orientation = orientation_warning(out.get("orientation"))
        return result_warnings(self.model, out.get("shape_plausibility"), points) + ([orientation] if orientation else [])

    def __call__(self, inputs: Any, spacing: Sequence[float] | float | None = None) -> Any:
        """Detect the landmarks of one image (file or array) or a list of them.

        Args:
            inputs: a file path, an ``(x, y)`` / ``(C, x, y)`` array or tensor, or a list of them.
            spacing: mm/pixel, one value or ``(sx, sy)``: required for arrays and non-DICOM files (a DICOM takes
                its own from its tags).
        """
        single = not isinstance(inputs, (list, tuple))
        items = self._items([inputs] if single else list(inputs), spacing)
        by_id = {d["id"]: d for d in items}
        results = [self._result(out, by_id[str(out["id"])]) for out in self._run(items)]
        return results[0] if single else results

    def _result(self, out: dict, item: dict) -> LandmarkResult:
        def array(key):
            value = out.get(key)
            return None if value is None else np.asarray(torch.as_tensor(value).detach().cpu(), dtype=np.float64)

        image = item["image"]
        in_memory = not isinstance(image, str)
        return LandmarkResult(
            id=str(out["id"]),
            source=None if in_memory else image,
            landmark_set=self.landmark_set if isinstance(self.landmark_set, str) else self.landmark_set.name,
            spacing=np.asarray(item["spacing"], dtype=np.float64),
            landmarks=array("pred_landmarks"),
            confidence=array("pred_confidence"),
            sigma_mm=array("sigma_mm"),
            measurements={k: float(v) for k, v in (out.get("measurements") or {}).items()},
            classes=dict(out.get("classes") or {}),
            image=np.asarray(image[0]) if in_memory and image.shape[0] == 1 else None,
            model=dict(self.model),
            pipeline=self.pipeline,
            warnings=self.warnings(out),
            orientation=out.get("orientation"),
        )


def _parsed(parser: ConfigParser, id: str) -> Any:
    """``parser.get_parsed_content(id)``, re-raising the config's own check errors (``ValueError``,
    ``FileNotFoundError``) as they are instead of wrapped in the ``RuntimeError`` of the expression's evaluation."""
    try:
        return parser.get_parsed_content(id)
    except RuntimeError as e:
        if isinstance(e.__cause__, (ValueError, OSError)):
            raise e.__cause__ from None
        raise


def _raise_unreadable(items: list[dict], error: Exception) -> None:
    """Re-raise a failed run as a one-line error naming the first image file that cannot be read, if any."""
    loader = LoadImage(reader=RadiographReader(), image_only=True)
    for d in items:
        if not isinstance(d["image"], str):
            continue
        try:
            loader(d["image"])
        except Exception as e:
            cause = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"{d['image']}: cannot read this image ({cause}); pass a DICOM, PNG, JPEG or BMP radiograph."
            ) from error
