"""Two gloo processes, each evaluating part of the images: the metric and the report see all of them, and only
rank 0 writes the report."""

import json
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.engine import Engine

from monai_ceph.handlers import EvaluationReport, RadialError

NAN = float("nan")
# rank 0: two images (errors 5 and 0 mm; 1 mm and not annotated); rank 1: one image (3 mm and missed)
PARTS = {
    0: [([[30.0, 40.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]), ([[10.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [NAN, NAN]])],
    1: [([[0.0, 30.0], [NAN, NAN]], [[0.0, 0.0], [0.0, 0.0]])],
}
MRE = 9.0 / 4


def _run(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        items = [
            {"pred_landmarks": torch.tensor(p), "landmarks": torch.tensor(g), "spacing": torch.tensor([0.1, 0.1])}
            for p, g in PARTS[rank]
        ]
        engine = Engine(lambda e, batch: [items[i] for i in batch])
        RadialError().attach(engine, "mre")
        report = EvaluationReport(out_dir, landmark_set=None, metric_name="mre", plot=False)
        report.attach(engine)
        engine.run([[i] for i in range(len(items))])
        assert engine.state.metrics["mre"] == pytest.approx(MRE), rank
        assert engine.state.metrics["n_missed"] == 1, rank
        assert engine.state.metrics["SDR_2.0mm"] == pytest.approx(40.0), rank
        assert engine.state.metric_details["mre"].shape == (3, 2), rank
        assert report.summary["n_images"] == 3 and report.summary["n_valid"] == 5, rank
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_gather_and_rank0_writes(tmp_path):
    out_dir = str(tmp_path / "report")
    # fork: the children need no re-import (spawn costs tens of seconds on 2 busy cores)
    mp.start_processes(_run, args=(str(tmp_path / "init"), out_dir), nprocs=2, join=True, start_method="fork")
    summary = json.loads(open(os.path.join(out_dir, "radial_error_summary.json")).read())
    assert summary["n_images"] == 3 and math.isclose(summary["mre_mm"], MRE)
    assert sorted(os.listdir(out_dir)) == ["radial_error_per_landmark.csv", "radial_error_summary.json"]
