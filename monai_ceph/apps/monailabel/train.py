"""Fine-tune a landmark bundle on the labels saved in the MONAI Label datastore.

A request runs the bundle's own training workflow (``train.json``, run list ``training``) through MONAI's
``ConfigWorkflow``, changed only by overrides: ``datalist_file`` (written from the datastore's ``final`` landmark
labels), ``max_epochs``, ``spatial_size`` and ``resume=False``. Each request is one fine-tuning round: it starts
from the current ``<bundle>/models/model.pt`` when there is one (loaded by the bundle's own ``model_loader``,
attached to ``train#trainer``; random weights otherwise), and the bundle's validation handler writes the new
``model.pt`` (best validation MRE of the round), which the infer task loads on its next request.

Before the workflow starts, every label is checked (format, and landmarks inside its image). A round that fails
raises :class:`~.errors.TrainingRoundError` whose one-line message names the cause (the label file and landmark,
or the innermost error of the workflow): it is the last line of the round's status ``details`` in MONAI Label,
and ``last_error`` in the task's statistics (``/info/`` ``train_stats``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.apps.monailabel.errors import RequestError, TrainingRoundError, input_error, one_line
from monai_ceph.apps.monailabel.images import check_landmarks_inside, image_size
from monai_ceph.data import LandmarkRecord, LandmarkSet, monailabel_datalist, monailabel_records

__all__ = ["CephLandmarkTrain"]

logger = logging.getLogger(__name__)


def _loss(output) -> float | None:
    output = output[0] if isinstance(output, (list, tuple)) and output else output
    loss = output.get("loss") if isinstance(output, dict) else None
    return None if loss is None else float(loss)


def _request_number(request: dict, key: str, default, cast, low: float, high: float = math.inf):
    """``request[key]`` (else ``default``) as ``cast`` within ``[low, high)``, else a :class:`RequestError`."""
    value = request.get(key, default)
    try:
        number = None if isinstance(value, bool) else cast(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != float(value) or not low <= number < high:
        kind = "a whole number" if cast is int else "a number"
        bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g})"
        raise RequestError(f"training request {key} {value!r}: expected {kind} {bounds}.")
    return number


def _check_inside(records: list[LandmarkRecord], labels: dict[str, str], landmark_set: LandmarkSet) -> None:
    """Refuse a record whose landmarks lie outside its image, naming its label file (``labels``: id -> path)."""
    for record in records:
        where = labels.get(record.id, record.id)
        check_landmarks_inside(record.landmarks, image_size(record.image), landmark_set, where)


class CephLandmarkTrain(TrainTask):
    """MONAI Label train task: fine-tune the app's bundle on the datastore's landmark labels.

    Request keys (``POST /train/<model>`` JSON body): ``max_epochs`` (default ``--conf max_epochs``, 5) and
    ``val_fraction`` (default ``--conf val_fraction``, 0: validate on the training images).

    Args:
        config: the app settings (bundle folder, default spacing, model input size).
    """

    def __init__(self, config: CephAppConfig) -> None:
        super().__init__(f"fine-tune the {config.name} bundle on the datastore's landmark labels (tag 'final')")
        self.app_config = config
        parser = config.parser()
        self.landmark_set = config.landmark_set(parser)
        self.ckpt_path = parser.get_parsed_content("ckpt_path")
        # where a round writes its datalist and statistics
        self.work_dir = Path(parser.get_parsed_content("output_dir")) / "monailabel"

    def config(self) -> dict:
        return {"max_epochs": self.app_config.max_epochs, "val_fraction": self.app_config.val_fraction}

    def stats(self) -> dict:
        """Statistics of the last finished round (also when it ran in MONAI Label's training subprocess), with
        ``last_error`` (``{"error", "finished"}``) when the latest round failed."""
        stats = _read_json(self.work_dir / "train_stats.json")
        error = _read_json(self.work_dir / "train_error.json")
        if error and error.get("finished", "") >= stats.get("finished", ""):
            stats["last_error"] = error
        return stats

    def __call__(self, request: dict, datastore: Datastore) -> dict:
        try:
            stats = self.train_round(request, datastore)
        except Exception as e:
            cause = input_error(e)
            message = f"training round failed: {cause if cause is not None else one_line(e)}"
            logger.error(message)
            _write_json(self.work_dir / "train_error.json", {"error": message, "finished": _now()})
            raise TrainingRoundError(message) from e
        _write_json(self.work_dir / "train_stats.json", stats)
        return stats

    def train_round(self, request: dict, datastore: Datastore) -> dict:
        """One fine-tuning round (see the module docstring); returns its statistics."""
        from monai.bundle import ConfigWorkflow
        from monai_ceph.data.datalist import write_datalist

        start = time.time()
        max_epochs = _request_number(request, "max_epochs", self.app_config.max_epochs, int, 1)
        val_fraction = _request_number(request, "val_fraction", self.app_config.val_fraction, float, 0, 1)
        pairs = [p for p in datastore.datalist() if str(p.get("label", "")).lower().endswith(".json")]
        records = monailabel_records(pairs, self.landmark_set, self.app_config.spacing)
        _check_inside(records, {Path(p["label"]).stem: p["label"] for p in pairs}, self.landmark_set)
        datalist = monailabel_datalist(records, val_fraction=val_fraction)
        work_dir = self.work_dir
        datalist_file = write_datalist(datalist, work_dir / "datalist.json")
        own = str(self.app_config.own_models_dir / "model.pt")  # the round writes here, never into a released model
        initial = next((p for p in (own, self.ckpt_path) if os.path.isfile(p)), None)
        logger.info(f"fine-tuning on {len(datalist['training'])} labelled images for {max_epochs} epochs "
                    f"from {initial or 'random weights'}")

        workflow = ConfigWorkflow(
            config_file=self.app_config.train_config,
            meta_file=self.app_config.meta_file,
            logging_file=False,  # keep MONAI Label's logging (the bundle's logging.conf would replace it)
            workflow_type="train",
            run_id="training",
            **self.app_config.overrides(),
            ckpt_dir=str(self.app_config.own_models_dir),
            datalist_file=str(datalist_file),
            max_epochs=max_epochs,
            resume=False,
        )
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        if initial is not None:
            loader = workflow.parser.get_parsed_content("model_loader")
            loader.load_path = initial  # the bundle's own model, else the released one: fine-tuned from it
            loader.attach(trainer)
        workflow.run()
        evaluator = workflow.parser.get_parsed_content("validate#evaluator")
        workflow.finalize()

        return {
            "model": self.app_config.name,
            "checkpoint": own,
            "initialized_from": initial,
            "images": {"training": len(datalist["training"]), "validation": len(datalist["validation"])},
            "epochs": int(trainer.state.epoch),
            "iterations": int(trainer.state.iteration),
            "train_loss": _loss(trainer.state.output),
            "best_val_mre_mm": float(evaluator.state.best_metric),
            "best_epoch": int(evaluator.state.best_metric_epoch),
            "val_metrics": {k: float(v) for k, v in evaluator.state.metrics.items() if isinstance(v, (int, float))},
            "spatial_size": list(self.app_config.spatial_size),
            "datalist": str(datalist_file),
            "seconds": round(time.time() - start, 1),
            "finished": _now(),
        }


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)
