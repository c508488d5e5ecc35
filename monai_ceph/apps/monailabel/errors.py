"""The app's errors, and the one line that tells a user what went wrong in an exception chain.

MONAI wraps the error of a transform (``applying transform ...``) or of a config expression (``Failed to evaluate
...``) in a ``RuntimeError``, and a DataLoader worker re-raises its error as text (``Caught ValueError in
DataLoader worker process 0. Original Traceback ...``): the message a user can act on is the innermost one.
"""

from __future__ import annotations

from monai_ceph.data import DataFileError
from monai_ceph.errors import InputError

__all__ = [
    "RequestError", "SetupError", "TrainingRoundError", "exception_chain", "input_error", "setup_error", "http_status",
    "one_line",
]


class RequestError(ValueError):
    """A value of a client's request (``max_epochs``, ``val_fraction``...) cannot be used; the message names it."""


class SetupError(RuntimeError):
    """A file the server was set up with cannot be used (a shape model of another landmark set...); the message
    names the file and the fault. Not the client's mistake, but worth telling the client (HTTP 500 with it)."""


class TrainingRoundError(RuntimeError):
    """A training round failed; the message is ``training round failed: <the cause in one line>``."""


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from (``raise ... from``: ``__cause__``), outermost first.

    An exception raised while another was handled (``__context__`` only) is the one that says what went wrong, so
    the chain does not follow ``__context__``.
    """
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__
    return chain


def input_error(error: BaseException) -> BaseException | None:
    """The innermost exception of the chain caused by the input (a :class:`~monai_ceph.data.DataFileError`, a
    :class:`RequestError`), or ``None`` when the failure is not the client's."""
    found = [e for e in exception_chain(error) if isinstance(e, (DataFileError, RequestError))]
    return found[-1] if found else None


def setup_error(error: BaseException) -> BaseException | None:
    """The innermost :class:`SetupError` or :class:`monai_ceph.errors.InputError` of the chain (in the server, an
    input error that is not the client's names a file the server was set up with: a checkpoint of another network),
    or ``None``."""
    found = [e for e in exception_chain(error) if isinstance(e, (SetupError, InputError))]
    return found[-1] if found else None


def http_status(error: BaseException) -> int:
    """The HTTP status of a client's input error: 413 for an image too large to decode, else 400."""
    from monai_ceph.apps.monailabel.images import ImageTooLargeError

    return 413 if isinstance(error, ImageTooLargeError) else 400


def one_line(error: BaseException, limit: int = 400) -> str:
    """``Type: message`` of the innermost exception of ``error``'s chain, its lines joined, at most ``limit``
    characters.

    For an error re-raised from a DataLoader worker it is the last line of the worker's traceback.
    """
    inner = exception_chain(error)[-1]
    text = str(inner).strip()
    if "Original Traceback" in text:
        line = text.splitlines()[-1].strip()
    else:
        message = " ".join(text.split())
        line = f"{type(inner).__name__}: {message}" if message else type(inner).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
