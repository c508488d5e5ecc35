"""``monai_ceph.errors``: which exception of a chain is the input's fault, and the one line the excepthook prints
for it (the bundle runs of tests/bundles/test_bad_inputs_bundle.py check it end to end)."""

import logging
import sys

import pytest

from monai_ceph import errors
from monai_ceph.data import SpacingError
from monai_ceph.errors import InputError, error_line, input_error


def _wrapped(inner):
    """``inner`` as MONAI raises it from a config expression."""
    try:
        try:
            raise inner
        except Exception as e:
            raise RuntimeError("Failed to evaluate ConfigExpression: \n\"$@evaluator.run()\"") from e
    except RuntimeError as e:
        return e


def _raised_here(error):
    try:
        raise error
    except Exception as e:
        return e


def test_the_innermost_input_error_of_the_chain():
    spacing = _wrapped(SpacingError("a.png: pixel spacing -1 must be finite and > 0 mm/pixel."))
    assert str(input_error(spacing)).startswith("a.png: pixel spacing -1")
    assert error_line(input_error(spacing)) == "error: a.png: pixel spacing -1 must be finite and > 0 mm/pixel."
    assert input_error(_wrapped(InputError("x.json:\n  bad"))) is not None
    assert error_line(InputError("x.json:\n  bad")) == "error: x.json: bad"
    # a ValueError raised outside monai_ceph (here: the tests) is not the input's fault; a RuntimeError never is
    assert input_error(_wrapped(ValueError("math domain error"))) is None
    assert input_error(_raised_here(RuntimeError("CUDA out of memory"))) is None


def test_a_value_error_raised_in_the_package_counts():
    from monai_ceph.data import check_spacing

    with pytest.raises(ValueError) as error:
        check_spacing(-1, "b.png")
    assert input_error(_wrapped(error.value)) is error.value


def test_the_hook_prints_one_line(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a))
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())  # restored afterwards
    monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
    assert errors.install_excepthook() and not errors.install_excepthook()  # once
    error = _wrapped(InputError("c.json: entry 3: 18 landmarks, expected 19."))
    sys.excepthook(type(error), error, error.__traceback__)
    assert capsys.readouterr().err == "error: c.json: entry 3: 18 landmarks, expected 19.\n" and seen == []
    other = _raised_here(RuntimeError("not an input error"))
    sys.excepthook(type(other), other, other.__traceback__)
    assert seen == [(RuntimeError, other, other.__traceback__)] and capsys.readouterr().err == ""
    monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
    sys.excepthook(type(error), error, error.__traceback__)
    assert seen[-1][1] is error and capsys.readouterr().err == "error: c.json: entry 3: 18 landmarks, expected 19.\n"
    record = logging.getLogger("x").makeRecord("x", logging.ERROR, "f", 1, "Exception", (), (type(error), error, None))
    assert record.exc_info is not None  # MONAI_CEPH_TRACEBACK=1 keeps the logged traceback
    monkeypatch.delenv(errors.TRACEBACK_ENV)
    record = logging.getLogger("x").makeRecord("x", logging.ERROR, "f", 1, "Exception", (), (type(error), error, None))
    assert record.exc_info is None  # logged without its traceback: the hook's line follows
