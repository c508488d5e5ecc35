import torch

from monai_ceph.handlers import latest_checkpoint


def _save(path, n=1000):
    torch.save({"weights": torch.arange(n, dtype=torch.float32)}, path)


def test_none_for_missing_or_empty_folder(tmp_path):
    assert latest_checkpoint(tmp_path / "absent") is None
    assert latest_checkpoint(tmp_path) is None


def test_newest_by_number_not_by_name(tmp_path):
    for n in (2, 9, 10):
        _save(tmp_path / f"checkpoint_epoch={n}.pt")
    _save(tmp_path / "model.pt")
    _save(tmp_path / "other_epoch=99.pt")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=10.pt")


def test_truncated_newest_is_skipped(tmp_path):
    _save(tmp_path / "checkpoint_epoch=1.pt")
    newest = tmp_path / "checkpoint_epoch=2.pt"
    _save(newest)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a run killed while saving
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")
    newest.write_bytes(b"")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")


def _validator(metrics):
    """An ignite engine that 'validates' to ``metrics[epoch - 1]`` each epoch, tracking the lowest as best."""
    from ignite.engine import Engine, Events

    engine = Engine(lambda e, b: None)
    engine.state.best_metric, engine.state.best_metric_epoch = -1, -1
    engine.state.key_metric_name = "val_mre"

    @engine.on(Events.EPOCH_COMPLETED)
    def _track(e):
        e.state.metrics["val_mre"] = metrics[e.state.epoch - 1]
        if e.state.best_metric_epoch == -1 or e.state.metrics["val_mre"] < e.state.best_metric:
            e.state.best_metric, e.state.best_metric_epoch = e.state.metrics["val_mre"], e.state.epoch

    return engine


def _saver(folder):
    from monai.handlers import CheckpointSaver

    net = torch.nn.Linear(1, 1)
    return net, CheckpointSaver(str(folder), {"model": net}, save_key_metric=True, key_metric_name="val_mre",
                                key_metric_negative_sign=True, key_metric_filename="model.pt")  # fmt: skip


def test_best_metric_state_round_trip_keeps_the_best_model(tmp_path):
    from monai_ceph.handlers import BestMetricState

    first, (net, saver) = _validator([5.0, 3.0]), _saver(tmp_path)
    saver.attach(first)
    first.run([0], max_epochs=2)
    state = BestMetricState(first, saver).state_dict()
    assert state == {"best_metric": 3.0, "best_metric_epoch": 2, "saved": [(-3.0, "model_key_metric=-3.0000.pt")]}
    state = torch.load(_roundtrip(tmp_path, state), weights_only=True)  # what CheckpointLoader reads back
    best_bytes = (tmp_path / "model.pt").read_bytes()

    # resumed: a worse validation (4 mm) must not replace the 3 mm model, a better one (2 mm) must
    second, (net, saver) = _validator([4.0, 2.0]), _saver(tmp_path)
    saver.attach(second)
    BestMetricState(second, saver).load_state_dict(state)
    assert (second.state.best_metric, second.state.best_metric_epoch) == (3.0, 2)
    torch.nn.init.constant_(net.weight, 7.0)
    second.run([0], max_epochs=1)
    assert (tmp_path / "model.pt").read_bytes() == best_bytes
    assert (second.state.best_metric, second.state.best_metric_epoch) == (3.0, 2)
    second.run([0], max_epochs=2)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].item() == 7.0
    assert (second.state.best_metric, second.state.best_metric_epoch) == (2.0, 2)


def _roundtrip(folder, state):
    path = folder / "state.pt"
    torch.save(state, path)
    return path


def test_best_metric_state_refuses_a_foreign_state():
    import pytest

    from monai_ceph.handlers import BestMetricState

    with pytest.raises(KeyError, match=r"lacks \['best_metric_epoch', 'saved'\]"):
        BestMetricState(_validator([1.0])).load_state_dict({"best_metric": 1.0})


def test_prune_checkpoints_keeps_the_newest_intact_and_newer_files(tmp_path):
    import os

    from monai_ceph.handlers import PruneCheckpoints

    for n, mtime in ((1, 100), (2, 200), (5, 300), (3, 400)):  # 3 is newer than 5: another run's, kept
        _save(tmp_path / f"checkpoint_epoch={n}.pt")
        os.utime(tmp_path / f"checkpoint_epoch={n}.pt", (mtime, mtime))
    _save(tmp_path / "model.pt")
    os.utime(tmp_path / "model.pt", (50, 50))
    (tmp_path / "checkpoint_epoch=9.pt").write_bytes(b"truncated")
    PruneCheckpoints(tmp_path)()
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "checkpoint_epoch=3.pt", "checkpoint_epoch=5.pt", "checkpoint_epoch=9.pt", "model.pt"
    ]  # fmt: skip
