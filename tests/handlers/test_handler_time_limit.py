import pytest
from ignite.engine import Engine, Events

from monai_ceph.handlers import TimeLimit


@pytest.mark.parametrize("elapsed, expected_iterations", [(0, 6), (100, 1)])
def test_stops_after_the_budget_and_completes(elapsed, expected_iterations):
    engine = Engine(lambda e, b: b)
    completed = []
    engine.add_event_handler(Events.COMPLETED, lambda e: completed.append(e.state.iteration))
    handler = TimeLimit(limit_sec=60)
    handler.start_time -= elapsed  # as if the handler had been created `elapsed` seconds ago
    handler.attach(engine)
    handler.attach(engine)  # attaching twice adds it once
    engine.run(range(3), max_epochs=2)
    assert engine.state.iteration == expected_iterations
    assert completed == [expected_iterations]  # a graceful stop: COMPLETED handlers still run


def test_bad_limit():
    with pytest.raises(TypeError, match="limit_sec"):
        TimeLimit(limit_sec=1.5)
