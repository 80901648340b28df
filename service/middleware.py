"""Request plumbing: the request id, per-route latency metrics, access logs, API keys.

`RequestContext` is a plain ASGI middleware (no BaseHTTPMiddleware: bodies stream through
untouched). It takes `X-Request-ID` from the client when it is sane, else makes one, echoes
it, puts it in every log line of the request, counts the in-flight requests for the drain,
and observes latency under the route TEMPLATE (`/v1/sessions/{session_id}/clips`), never the
raw path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Unauthorized
from service.logs import request_id_var
from service.metrics import Metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMATCHED = "unmatched"  # the route label of requests no route matched (404s)
log = logging.getLogger("aia.access")


class InFlight:
    """Requests being answered now; the drain waits for zero."""

    def __init__(self) -> None:
        self.count = 0


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, in_flight: InFlight) -> None:
        self.app, self.metrics, self.in_flight = app, metrics, in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status, version = 500, ""
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = message["status"]
                version = dict(message.get("headers", [])).get(
                    b"x-model-version", b"").decode("latin-1")
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self.in_flight.count += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight.count -= 1
            seconds = time.perf_counter() - started
            route = route_template(scope)
            self.metrics.observe_request(route, scope["method"], status, seconds, version)
            log.info("request", extra={"method": scope["method"], "route": route,
                                       "path": scope["path"], "status": status,
                                       "model": version or None,
                                       "duration_s": round(seconds, 6)})
            request_id_var.reset(token)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def check_api_key(request: Request, accepted: Sequence[str]) -> None:
    """No hashes configured: open. Else the key's sha256 must match one, compared in
    constant time (every hash is compared, so timing does not say which one)."""
    if not accepted:
        return
    key = presented_key(request)
    if key is None:
        raise Unauthorized("send an API key in `X-API-Key` or `Authorization: Bearer <key>`",
                           headers={"WWW-Authenticate": "Bearer"})
    digest = hash_key(key).encode()
    matched = False
    for expected in accepted:
        matched |= hmac.compare_digest(digest, expected.encode())
    if not matched:
        raise Unauthorized("the API key is not valid for this service",
                           headers={"WWW-Authenticate": "Bearer"})
