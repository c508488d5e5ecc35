"""Fine-tune a landmark bundle on the labels saved in the MONAI Label datastore.

A request runs the bundle's own training workflow (``train.json``, run list ``training``) through MONAI's
``ConfigWorkflow``, changed only by overrides: ``datalist_file`` (written from the datastore's ``final`` landmark
labels), ``max_epochs``, ``spatial_size`` and ``resume=False``. Each request is one fine-tuning round: it starts
from the current ``<bundle>/models/model.pt`` when there is one (random weights otherwise), and the bundle's
validation handler writes the new ``model.pt`` (best validation MRE of the round), which the infer task loads on
its next request.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.data import monailabel_datalist, monailabel_records

__all__ = ["CephLandmarkTrain"]

logger = logging.getLogger(__name__)


def _loss(output) -> float | None:
    output = output[0] if isinstance(output, (list, tuple)) and output else output
    loss = output.get("loss") if isinstance(output, dict) else None
    return None if loss is None else float(loss)


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
        """Statistics of the last finished round (also when it ran in MONAI Label's training subprocess)."""
        path = self.work_dir / "train_stats.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def __call__(self, request: dict, datastore: Datastore) -> dict:
        from monai.bundle import ConfigWorkflow
        from monai_ceph.data.datalist import write_datalist

        start = time.time()
        max_epochs = int(request.get("max_epochs", self.app_config.max_epochs))
        val_fraction = float(request.get("val_fraction", self.app_config.val_fraction))
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}.")
        pairs = [p for p in datastore.datalist() if str(p.get("label", "")).lower().endswith(".json")]
        records = monailabel_records(pairs, self.landmark_set, self.app_config.spacing)
        datalist = monailabel_datalist(records, val_fraction=val_fraction)
        work_dir = self.work_dir
        datalist_file = write_datalist(datalist, work_dir / "datalist.json")
        initial = self.ckpt_path if os.path.isfile(self.ckpt_path) else None
        logger.info(f"fine-tuning on {len(datalist['training'])} labelled images for {max_epochs} epochs "
                    f"from {initial or 'random weights'}")

        workflow = ConfigWorkflow(
            config_file=self.app_config.train_config,
            meta_file=self.app_config.meta_file,
            logging_file=False,  # keep MONAI Label's logging (the bundle's logging.conf would replace it)
            workflow_type="train",
            run_id="training",
            **self.app_config.overrides(),
            datalist_file=str(datalist_file),
            max_epochs=max_epochs,
            resume=False,
        )
        workflow.initialize()
        if initial is not None:
            network = workflow.parser.get_parsed_content("network")
            state = torch.load(initial, map_location=next(network.parameters()).device, weights_only=True)
            network.load_state_dict(state.get("model", state) if isinstance(state.get("model"), dict) else state)
        workflow.run()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        evaluator = workflow.parser.get_parsed_content("validate#evaluator")
        workflow.finalize()

        stats = {
            "model": self.app_config.name,
            "checkpoint": self.ckpt_path,
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
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        (work_dir / "train_stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
        return stats
