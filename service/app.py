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
from service.routes import detect, health, models, sessions
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


def _count_rejection(metrics: Metrics, error: ServiceError) -> None:
    for kind, reason in REJECTED:
        if isinstance(error, kind):
            metrics.rejected.labels(reason).inc()
            return


def add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    async def on_service_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, ServiceError)
        _count_rejection(metrics, err)
        return problem_response(request, err)

    async def on_validation(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                          for e in err.errors())
        return await on_service_error(request, Unprocessable(f"invalid request: {where}"))

    async def on_http(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, StarletteHTTPException)
        error = ServiceError(str(err.detail), headers=dict(err.headers or {}))
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
    for module in (detect, sessions, models, health):
        app.include_router(module.router)
    add_error_handlers(app, metrics)
    app.add_middleware(RequestContext, metrics=metrics, in_flight=service.in_flight)
    return app
