import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai.handlers import StatsHandler
from monai_ceph.handlers import RadialError


def test_key_metric_in_supervised_evaluator(make_evaluator, example):
    stats = StatsHandler(iteration_log=False)
    evaluator = make_evaluator(key_val_metric={"val_mre": RadialError()}, val_handlers=[stats])
    evaluator.run()
    metrics = evaluator.state.metrics
    assert metrics["val_mre"] == pytest.approx(example.mre, rel=1e-9)
    assert evaluator.state.best_metric == pytest.approx(example.mre, rel=1e-9)
    assert metrics["SD_mm"] == pytest.approx(example.sd, rel=1e-9)
    for t, v in example.sdr.items():
        assert metrics[f"SDR_{t}mm"] == pytest.approx(v)
    assert metrics["n_missed"] == 1
    # per image, per landmark errors of all iterations (two batches) in metric_details
    np.testing.assert_allclose(evaluator.state.metric_details["val_mre"].numpy(), example.errors)


def test_lower_mre_is_the_better_metric(make_evaluator):
    evaluator = make_evaluator(key_val_metric={"val_mre": RadialError()})
    evaluator.run()
    evaluator.state.best_metric = 10.0  # a worse previous best: the current MRE must replace it
    evaluator.run()
    assert evaluator.state.best_metric == pytest.approx(2.25)


def test_per_landmark_names_and_prefix(make_evaluator, example):
    metric = RadialError(thresholds=(3.0,), per_landmark=True, landmark_set=None, prefix="val_")
    evaluator = make_evaluator(key_val_metric={"val_mre": metric})
    evaluator.run()
    metrics = evaluator.state.metrics
    assert metrics["val_MRE_L1"] == pytest.approx(example.mre_per_landmark[0])
    assert metrics["val_MRE_L2"] == pytest.approx(example.mre_per_landmark[1])
    assert metrics["val_SDR_3.0mm"] == pytest.approx(60.0)
    assert "SDR_2.0mm" not in metrics


def test_per_landmark_abbreviations_from_the_set():
    handler = RadialError(per_landmark=True, landmark_set="isbi2015")
    engine = Engine(lambda e, b: None)
    handler.attach(engine, "mre")
    gt = torch.zeros(1, 19, 2, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 1] = torch.tensor([30.0, 40.0])  # Nasion 5 mm off, all others exact
    handler.update((pred, gt, torch.tensor([[0.1, 0.1]])))
    handler.completed(engine, "mre")
    assert engine.state.metrics["mre"] == pytest.approx(5.0 / 19)
    assert handler.extra_metrics["MRE_N"] == engine.state.metrics["MRE_N"]
    assert engine.state.metrics["MRE_N"] == pytest.approx(5.0)
    assert engine.state.metrics["MRE_S"] == 0.0
    assert "MRE_Ar" in engine.state.metrics


def test_bare_engine_with_decollated_outputs_and_reset(example):
    """A plain ignite Engine whose outputs already hold every key; a second run must not accumulate the first."""
    outputs = [example.add_predictions(d) for d in example.items()]
    engine = Engine(lambda e, batch: [outputs[i] for i in batch])
    RadialError().attach(engine, "mre")
    for _ in range(2):
        engine.run([[0, 1], [2]])
        assert engine.state.metrics["mre"] == pytest.approx(example.mre, rel=1e-9)
        assert engine.state.metrics["SDR_2.0mm"] == pytest.approx(40.0)
        assert engine.state.metric_details["mre"].shape == (3, 2)


def test_output_transform_must_give_three_items(example):
    outputs = [example.add_predictions(d) for d in example.items()]
    engine = Engine(lambda e, batch: outputs)
    RadialError(output_transform=lambda o: ([i["pred_landmarks"] for i in o], [i["landmarks"] for i in o])).attach(
        engine, "mre"
    )
    with pytest.raises(ValueError, match="pred_landmarks, landmarks, spacing"):
        engine.run([0])


def test_batch_first_tensors():
    handler = RadialError(thresholds=(1.0,))
    handler.update((torch.tensor([[[3.0, 4.0]]]), torch.zeros(1, 1, 2), torch.tensor([[0.2, 0.2]])))
    summary = handler.metric_fn.aggregate()
    assert summary["mre"].item() == pytest.approx(1.0)
    assert summary["sdr"].tolist() == [100.0]
