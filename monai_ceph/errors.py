"""A fault of the user's input ends a run in one line ``error: <file, option or entry>: <fault>``.

MONAI wraps the error of a config expression in ``RuntimeError: Failed to evaluate ConfigExpression`` (and of a
transform in ``applying transform ...``), so an uncaught input error of ``python -m monai.bundle run ...`` prints
50-80 lines of traceback with the useful line in the middle. This module holds the one mechanism that fixes it:

- :class:`InputError`: the base class of the package's input errors (a ``ValueError``, so ``except ValueError``
  keeps working); a ``ValueError`` or ``OSError`` of a class defined in monai_ceph
  (:class:`~monai_ceph.data.DataFileError`...) or *raised in monai_ceph's own code* (the model settings check, the
  datalist checks...) counts as one too;
- :func:`input_error`: the innermost input error of an exception's chain (``__cause__``, else ``__context__``);
- :func:`install_excepthook`: a ``sys.excepthook`` that prints only ``error: <message>`` on stderr for an uncaught
  exception whose chain holds an input error (any other exception keeps Python's traceback), and a log record
  factory that drops the traceback Ignite/MONAI log for such an error while an engine runs. The exit status stays
  Python's ``1`` for an uncaught exception (an excepthook cannot set it; the ``monai-ceph`` CLI exits 2). Set
  ``MONAI_CEPH_TRACEBACK=1`` to get the full traceback (then the ``error:`` line is still the last line).

``import monai_ceph`` installs the hook when the program is ``python -m monai.bundle`` (the bundles' ``imports``
run ``$import monai_ceph``); elsewhere call :func:`install_excepthook` yourself.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

__all__ = ["TRACEBACK_ENV", "InputError", "input_error", "error_line", "show_traceback", "install_excepthook"]

TRACEBACK_ENV = "MONAI_CEPH_TRACEBACK"
"""Environment variable: ``1`` shows the full traceback of an input error."""

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class InputError(ValueError):
    """A file, option or entry given by the user cannot be used; the message names it and the fault."""


def show_traceback() -> bool:
    """Whether :data:`TRACEBACK_ENV` asks for full tracebacks."""
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and what it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    while error is not None and all(error is not e for e in chain):
        chain.append(error)
        error = error.__cause__ if error.__cause__ is not None else (
            None if error.__suppress_context__ else error.__context__
        )
    return chain


def _raised_in_package(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIR)


def _is_input_error(error: BaseException) -> bool:
    if isinstance(error, InputError):
        return True
    if not isinstance(error, (ValueError, OSError)):
        return False
    # the package's own error classes (DataFileError, SpacingError...), or a plain one its checks raised
    return type(error).__module__.split(".")[0] == "monai_ceph" or _raised_in_package(error)


def input_error(error: BaseException) -> BaseException | None:
    """The innermost input error (:class:`InputError`, or a ``ValueError``/``OSError`` of monai_ceph's classes or
    raised in its code) of ``error``'s chain, or ``None`` when the failure is not the input's."""
    found = [e for e in _chain(error) if _is_input_error(e)]
    return found[-1] if found else None


def error_line(error: BaseException) -> str:
    """``error: <message>`` of ``error`` on one line (its lines joined)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"error: {text}"


def _excepthook(previous):
    def hook(exc_type, exc, tb):
        found = input_error(exc) if isinstance(exc, Exception) else None
        if found is None or show_traceback():
            previous(exc_type, exc, tb)
        if found is not None:
            sys.stderr.flush()
            print(error_line(found), file=sys.stderr, flush=True)

    hook.monai_ceph = True
    return hook


def _record_factory(previous):
    """A log record factory that drops the traceback (``exc_info``) of a record about an input error (Ignite's
    ``Engine run is terminating due to exception``, MONAI's ``StatsHandler``): the excepthook prints its one line
    when the run ends. Whatever handlers a logging config installs later, every record passes through it."""

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        info = record.exc_info
        if info and info[1] is not None and not show_traceback() and input_error(info[1]) is not None:
            record.exc_info, record.exc_text = None, None
        return record

    factory.monai_ceph = True
    return factory


def install_excepthook() -> bool:
    """Install the one-line ``sys.excepthook`` and the log record factory above; returns whether they were not
    installed already."""
    if getattr(sys.excepthook, "monai_ceph", False):
        return False
    sys.excepthook = _excepthook(sys.excepthook)
    if not getattr(logging.getLogRecordFactory(), "monai_ceph", False):
        logging.setLogRecordFactory(_record_factory(logging.getLogRecordFactory()))
    return True


def running_bundle_script() -> bool:
    """Whether this program is ``python -m monai.bundle``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) in ("monai.bundle", "monai.bundle.__main__")
