"""A token for the server's write requests.

With a token set (``--conf token <secret>`` or the environment variable ``MONAI_CEPH_TOKEN``), every request that
changes something on the server (any method but GET/HEAD/OPTIONS: ``PUT``/``DELETE /datastore/...``, saving a label,
``POST``/``DELETE /train/...``, ``PUT``/``DELETE /model/...``, batch inference, scoring, ``/reload``...) needs the
header ``Authorization: Bearer <token>``: without it the answer is 401, with another token 403. Inference
(``POST /infer/<model>``), active learning's next-sample choice and sessions (which the inference of an upload uses)
stay open, like every GET but the server log ``/logs/`` (images and labels can still be downloaded: bind the server
to 127.0.0.1, see README.md).

:func:`install_token_guard` puts :class:`TokenGuard` in front of the running FastAPI application's middleware stack
(the app is created inside MONAI Label's start-up, after Starlette has built that stack, so ``add_middleware`` is
no longer allowed).
"""

from __future__ import annotations

import hmac
import logging
import os
import sys

__all__ = [
    "TOKEN_ENV", "OPEN_PATHS", "GUARDED_READS", "needs_token", "TokenGuard", "install_token_guard", "configured_token"
]

logger = logging.getLogger(__name__)

TOKEN_ENV = "MONAI_CEPH_TOKEN"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = ("/infer/", "/activelearning/", "/session/", "/session")
"""Path prefixes whose non-GET requests stay open: they compute an answer and change no stored data."""


GUARDED_READS = ("/logs",)
"""Path prefixes that need the token for every method: the server log (MONAI Label writes the ``--conf`` pairs
into it, so a ``--conf token`` would be readable there, and it records every request)."""


def needs_token(method: str, path: str) -> bool:
    """Whether a ``method`` request for ``path`` needs the token."""
    if path.startswith(GUARDED_READS):
        return True
    return method.upper() not in SAFE_METHODS and not path.startswith(OPEN_PATHS)


class TokenGuard:
    """ASGI middleware: a write request (:func:`needs_token`) without ``Authorization: Bearer <token>`` is answered
    401 (no token) or 403 (another token) with a JSON ``detail`` naming the request, before the app sees it."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and needs_token(scope["method"], scope["path"]):
            given = _bearer(scope)
            if given is None or not hmac.compare_digest(given, self.token):
                from starlette.responses import JSONResponse

                what = f"{scope['method']} {scope['path']}"
                if given is None:
                    status, detail = 401, f"{what}: this server needs a token for changes; send the header " \
                                          "'Authorization: Bearer <token>'."
                else:
                    status, detail = 403, f"{what}: wrong token."
                response = JSONResponse({"detail": detail}, status_code=status,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer(scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


def install_token_guard(token: str | None, app=None) -> bool:
    """Put :class:`TokenGuard` with ``token`` in front of ``app`` (default: the running server's
    ``monailabel.app.app``); nothing when ``token`` is empty. Returns whether the guard is in place."""
    if not token:
        return False
    if app is None:
        app = getattr(sys.modules.get("monailabel.app"), "app", None)
    if app is None:
        logger.warning("no MONAI Label server application found: the token is not enforced.")
        return False
    stack = app.middleware_stack if app.middleware_stack is not None else app.build_middleware_stack()
    if not isinstance(stack, TokenGuard):
        app.middleware_stack = TokenGuard(stack, token)
    return True


def configured_token(conf) -> str | None:
    """The token of ``--conf token`` or else of :data:`TOKEN_ENV`, or ``None``."""
    return (conf or {}).get("token") or os.environ.get(TOKEN_ENV) or None
