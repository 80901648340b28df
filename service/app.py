"""`create_app(settings)`: the FastAPI app, its lifespan and its error mapping (domain
errors -> application/problem+json, in one place). What the lifespan builds and tears down is
`service.state.Service`; the routes reach it through `service.deps`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.errors import (
    PROBLEM_JSON,
    TYPE_BASE,
    BadRequest,
    DeadlineExceeded,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unprocessable,
    UnsupportedMedia,
)
from service.metrics import Metrics
from service.middleware import RequestContext
from service.routes import admin, detect, health, models, sessions
from service.settings import Settings
from service.state import Service

log = logging.getLogger("aia.service")
REJECTED = ((Overloaded, "overloaded"), (DeadlineExceeded, "deadline"),
            (PayloadTooLarge, "too_large"), (UnsupportedMedia, "unsupported"),
            (Unprocessable, "invalid"), (BadRequest, "invalid"))


def problem_response(request: Request, error: ServiceError) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(error.problem(instance=request.url.path, request_id=request_id),
                        status_code=error.status, headers=error.headers,
                        media_type=PROBLEM_JSON)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path; Starlette's 405 names only the first
    route's, and a path such as /v1/sessions/{id} has a route per method."""
    methods: set[str] = set()
    for route in request.app.state.api_routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _count_rejection(metrics: Metrics, error: ServiceError) -> None:
    for kind, reason in REJECTED:
        if isinstance(error, kind):
            metrics.rejected.labels(reason).inc()
            return


def add_error_handlers(app: FastAPI, service: Service) -> None:
    metrics = service.metrics

    async def on_service_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, ServiceError)
        _count_rejection(metrics, err)
        if isinstance(err, Overloaded) and service.engine is not None:
            err.headers["Retry-After"] = str(service.engine.load.retry_after_s())
        return problem_response(request, err)

    async def on_validation(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                          for e in err.errors())
        return await on_service_error(request, Unprocessable(f"invalid request: {where}"))

    async def on_http(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, StarletteHTTPException)
        headers = dict(err.headers or {})
        if err.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        error = ServiceError(str(err.detail), headers=headers)
        body = {**error.problem(request.url.path, getattr(request.state, "request_id", None)),
                "status": err.status_code, "title": "Not found" if err.status_code == 404
                else "HTTP error", "type": TYPE_BASE + ("not-found" if err.status_code == 404
                                                        else f"http-{err.status_code}")}
        return JSONResponse(body, status_code=err.status_code, headers=error.headers,
                            media_type=PROBLEM_JSON)

    async def on_crash(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=err)
        return problem_response(request, ServiceError("internal error; the request id in "
                                                      "this answer finds it in the logs"))

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> FastAPI:
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    service = Service(settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="AIA action detection", version="1",
                  description="Spatio-temporal action detection (AIA, ECCV 2020) with "
                              "per-session memory. Errors are application/problem+json.",
                  lifespan=lifespan)
    app.state.service = service
    for module in (detect, sessions, models, admin, health):
        app.include_router(module.router)
    app.state.api_routes = [route for module in (detect, sessions, models, admin, health)
                            for route in module.router.routes]
    add_error_handlers(app, service)
    app.add_middleware(RequestContext, metrics=metrics, in_flight=service.in_flight)
    return app
