"""The ``params`` form field of ``POST /infer/<model>``, checked before MONAI Label reads it.

MONAI Label's endpoint runs ``request.update(json.loads(params))`` before the app sees the request, so a field that
is not valid JSON answers 500, and one that is JSON but not an object either answers 500 (``5``, ``null``) or,
worse, is merged into the request (``[["image", "x"]]``). :func:`check_infer_params` puts a wrapper in front of
that endpoint which refuses both with a 400 naming the field; everything else goes to MONAI Label's own code.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys

from fastapi import HTTPException

__all__ = ["parse_params", "check_infer_params"]

logger = logging.getLogger(__name__)

INFER_PATH = "/infer/{model}"


def parse_params(text) -> dict:
    """The ``params`` form field as a dict (``""``: ``{}``), or HTTP 400 naming what is wrong with it."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise HTTPException(status_code=400, detail=f"params {text!r:.80}: not valid JSON ({e}).") from None
    if not isinstance(value, dict):
        raise HTTPException(
            status_code=400, detail=f"params {text!r:.80}: expected a JSON object {{...}}, got {type(value).__name__}."
        )
    return value


def check_infer_params(app=None) -> bool:
    """Route ``POST /infer/<model>`` of the running MONAI Label server through :func:`parse_params` first.

    Args:
        app: the server's FastAPI application; default: ``monailabel.app.app`` when that module is loaded (it is
            in the server process; nothing is imported otherwise).

    Returns:
        whether the route was found and wrapped (once: a second call changes nothing).
    """
    from fastapi.routing import APIRoute

    if app is None:
        module = sys.modules.get("monailabel.app")
        app = getattr(module, "app", None)
    if app is None:
        return False
    found = _find_route(app.router)
    if found is None:
        logger.warning(f"no POST {INFER_PATH} route in the server: its params field is not checked.")
        return False
    router, i, route = found
    original = route.endpoint
    if getattr(original, "checks_params", False):
        return True
    if not inspect.iscoroutinefunction(original):
        logger.warning(f"POST {INFER_PATH} is not a coroutine endpoint: its params field is not checked.")
        return False

    @functools.wraps(original)  # the same signature, so FastAPI resolves the same form fields and dependencies
    async def endpoint(*args, **kwargs):
        parse_params(kwargs.get("params"))
        return await original(*args, **kwargs)

    endpoint.checks_params = True
    router.routes[i] = APIRoute(
        route.path,
        endpoint,
        methods=list(route.methods),
        name=route.name,
        summary=route.summary,
        description=route.description,
        tags=route.tags,
        dependencies=route.dependencies,
        responses=route.responses,
        openapi_extra=route.openapi_extra,
    )
    if hasattr(router, "_mark_routes_changed"):  # FastAPI >= 0.12x caches the routes of included routers
        router._mark_routes_changed()
    return True


def _find_route(router):
    """``(router, index, route)`` of the ``POST`` :data:`INFER_PATH` route, searched through included routers
    (FastAPI keeps an included router as a route of its own since 0.12x; older ones copy its routes)."""
    from fastapi.routing import APIRoute

    for i, route in enumerate(router.routes):
        if isinstance(route, APIRoute) and route.path.endswith(INFER_PATH) and "POST" in route.methods:
            return router, i, route
        inner = getattr(route, "original_router", None)
        if inner is not None and (found := _find_route(inner)) is not None:
            return found
    return None
