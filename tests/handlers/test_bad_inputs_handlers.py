"""Bad-input catalogue, handlers lane: two runs writing into one output folder, and what the writers write. Each case
asserts the exception, that the message names the folder and the other run's pid, and that nothing already written
was lost."""

import json
import os
import subprocess
import sys

import pytest

from ignite.engine import Events

from monai_ceph.handlers import (
    LOCK_FILENAME,
    BatchSummary,
    EvaluationReport,
    LandmarkWriter,
    OutputFolderBusyError,
    RadialError,
)
from monai_ceph.handlers.output_lock import acquire_output_folder, release_output_folder


def _strict_json(text):
    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def _writers(out):
    return [LandmarkWriter(out, landmark_set=None), EvaluationReport(out, landmark_set=None), BatchSummary(out)]


def _run(make_evaluator, out, **kwargs):
    make_evaluator(val_handlers=_writers(out), key_val_metric={"val_mre": RadialError(landmark_set=None)},
                   **kwargs).run()


@pytest.fixture
def other_run(tmp_path):
    """A second live process holding the lock of ``tmp_path / 'out'`` (forked: no re-import); yields its pid."""
    out = tmp_path / "out"
    read, write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other run: take the lock, say so, wait to be told to end
        try:
            acquire_output_folder(out)
            os.write(write, b"1")
            os.read(go_read, 1)
        finally:
            os._exit(0)
    assert os.read(read, 1) == b"1"
    yield pid
    os.write(go_write, b"1")
    os.waitpid(pid, 0)
    for fd in (read, write, go_read, go_write):
        os.close(fd)


def test_a_second_run_into_a_busy_folder_fails_naming_the_folder_and_the_pid(tmp_path, make_evaluator, other_run):
    out = tmp_path / "out"
    (out / "000.json").write_text("written before")
    with pytest.raises(OutputFolderBusyError, match=rf"{out}: another run \(pid {other_run} on .*\) is writing into "
                                                    r"this output folder"):
        _run(make_evaluator, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(["000.json", LOCK_FILENAME])  # nothing written, nothing lost
    assert (out / "000.json").read_text() == "written before"


def test_the_lock_is_let_go_when_the_run_ends(tmp_path, make_evaluator):
    out = tmp_path / "out"
    seen = []
    evaluator = make_evaluator(val_handlers=_writers(out), key_val_metric={"val_mre": RadialError(landmark_set=None)})
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append((out / LOCK_FILENAME).is_file()))
    evaluator.run()
    assert seen and all(seen)  # held while writing
    assert not (out / LOCK_FILENAME).exists()
    _run(make_evaluator, out)  # and taken again by the next run
    assert {"000.json", "radial_error_summary.json", "failed.json"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("stats_first", [False, True])
def test_a_failing_run_lets_go_of_the_lock_and_still_raises(tmp_path, make_evaluator, stats_first):
    """The lock goes when the run fails, also when MONAI's StatsHandler, attached first, logs the exception and
    raises it again."""
    from monai.handlers import StatsHandler

    out = tmp_path / "out"
    stats = [StatsHandler(iteration_log=False)] if stats_first else []
    evaluator = make_evaluator(val_handlers=[*stats, *_writers(out)])

    def fail(engine):
        raise RuntimeError("the network broke")

    evaluator.add_event_handler(Events.ITERATION_COMPLETED, fail)
    with pytest.raises(RuntimeError, match="the network broke"):
        evaluator.run()
    assert not (out / LOCK_FILENAME).exists()


def test_a_stale_lock_of_a_dead_run_is_taken_over(tmp_path, make_evaluator):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_FILENAME).write_text(json.dumps({"pid": int(dead.stdout), "host": "here"}))  # it died holding it
    _run(make_evaluator, out)
    assert not (out / LOCK_FILENAME).exists() and (out / "radial_error_summary.json").is_file()


def test_the_writers_of_one_process_share_the_lock(tmp_path):
    out = tmp_path / "out"
    lock = acquire_output_folder(out)
    assert acquire_output_folder(out) == lock  # re-entrant
    assert str(os.getpid()) in lock.read_text()
    release_output_folder(out)
    assert lock.is_file()
    release_output_folder(out)
    assert not lock.exists()


def test_every_json_the_writers_write_is_valid(tmp_path, make_evaluator):
    """The cases have a missing prediction (an infinite error) and a missing ground truth (NaN)."""
    out = tmp_path / "out"
    _run(make_evaluator, out)
    files = sorted(out.glob("*.json"))
    assert len(files) >= 5
    for path in files:
        _strict_json(path.read_text())
    assert _strict_json((out / "002.json").read_text())


def test_the_reports_written_at_completed_are_written_under_the_lock(tmp_path, make_evaluator):
    out = tmp_path / "out"
    report = EvaluationReport(out, landmark_set=None)
    locked = []
    original = report.write
    report.write = lambda summary: (locked.append((out / LOCK_FILENAME).is_file()), original(summary))[1]
    make_evaluator(val_handlers=[report, LandmarkWriter(out, landmark_set=None)],
                   key_val_metric={"val_mre": RadialError(landmark_set=None)}).run()
    assert locked == [True] and not (out / LOCK_FILENAME).exists()


def test_a_terminated_run_writes_its_reports_under_the_lock_then_lets_go(tmp_path, make_evaluator):
    out = tmp_path / "out"
    summary = BatchSummary(out)
    locked = []
    original = summary.completed
    summary.completed = lambda engine: (locked.append((out / LOCK_FILENAME).is_file()), original(engine))[1]
    evaluator = make_evaluator(val_handlers=[summary])
    evaluator.add_event_handler(Events.ITERATION_COMPLETED(once=1), lambda e: e.terminate())
    evaluator.run()
    assert locked == [True] and (out / "failed.json").is_file() and not (out / LOCK_FILENAME).exists()
