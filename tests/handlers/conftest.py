"""A tiny landmark evaluation for the handler tests: three images with known errors, run by MONAI's evaluator."""

import math
from types import SimpleNamespace

import pytest
import torch

from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator

NAN = float("nan")

# Three images, two landmarks (x, y source pixels) each; spacing (x, y) mm/px differs per image.
# img 000, spacing (0.1, 0.1):  offsets (30, 40) -> 5 mm;   (0, 0) -> 0 mm
# img 001, spacing (0.2, 0.1):  offset (5, 0) -> 1 mm;      ground truth missing -> excluded
# img 002, spacing (0.5, 0.5):  offset (0, 6) -> 3 mm;      prediction missing -> missed (SDR failure)
CASES = [
    {"id": "000", "spacing": [0.1, 0.1], "landmarks": [[10.0, 10.0], [20.0, 20.0]], "pred": [[40.0, 50.0], [20, 20]]},
    {"id": "001", "spacing": [0.2, 0.1], "landmarks": [[0.0, 0.0], [NAN, NAN]], "pred": [[5.0, 0.0], [5.0, 5.0]]},
    {"id": "002", "spacing": [0.5, 0.5], "landmarks": [[0.0, 0.0], [1.0, 1.0]], "pred": [[0.0, 6.0], [NAN, NAN]]},
]
ERRORS = [[5.0, 0.0], [1.0, NAN], [3.0, math.inf]]
MRE = 9.0 / 4  # finite errors 5, 0, 1, 3
SD = math.sqrt((2.75**2 + 2.25**2 + 1.25**2 + 0.75**2) / 4)
SDR = {2.0: 40.0, 2.5: 40.0, 3.0: 60.0, 4.0: 60.0}  # of the 5 annotated points; the missed one fails
MRE_PER_LANDMARK = [3.0, 0.0]


def dataset_items(image=None):
    """Dataset dicts as a preprocessing would give them (tensors), with a dummy network input."""
    return [
        {
            "image": torch.zeros(1, 8, 8) if image is None else image,
            "label": torch.zeros(2, 8, 8),
            "landmarks": torch.tensor(c["landmarks"], dtype=torch.float64),
            "spacing": torch.tensor(c["spacing"], dtype=torch.float64),
            "id": c["id"],
        }
        for c in CASES
    ]


def add_predictions(d):
    """Postprocessing: the 'model' predicts the landmarks of CASES, with a confidence of 0.5 and 0.25."""
    d = dict(d)
    case = next(c for c in CASES if c["id"] == d["id"])
    d["pred_landmarks"] = torch.tensor(case["pred"], dtype=torch.float64)
    d["pred_confidence"] = torch.tensor([0.5, 0.25])
    return d


@pytest.fixture
def make_evaluator():
    """``make_evaluator(val_handlers=..., key_val_metric=..., items=...)``: a SupervisedEvaluator, batch size 2."""

    def _make(items=None, **kwargs):
        loader = DataLoader(Dataset(items or dataset_items()), batch_size=2)
        return SupervisedEvaluator(
            device=torch.device("cpu"),
            val_data_loader=loader,
            network=torch.nn.Identity(),
            postprocessing=add_predictions,
            metric_cmp_fn=lambda current, best: current < best,
            **kwargs,
        )

    return _make


@pytest.fixture
def example():
    """The cases above and their expected radial-error statistics."""
    return SimpleNamespace(
        cases=CASES,
        items=dataset_items,
        add_predictions=add_predictions,
        errors=ERRORS,
        mre=MRE,
        sd=SD,
        sdr=SDR,
        mre_per_landmark=MRE_PER_LANDMARK,
    )
