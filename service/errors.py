"""Domain errors of the service, mapped once to `application/problem+json` (RFC 9457).

Stages raise these; routes never build error responses themselves. `type` is a stable
slug clients can switch on; `detail` says what to fix.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://aia.dev/problems/"


class ServiceError(Exception):
    """Base class: an HTTP status, a stable problem type and a message that says what to fix."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def problem(self, instance: str | None = None, request_id: str | None = None
                ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE_BASE + self.slug, "title": self.title,
                                "status": self.status, "detail": self.detail, **self.extra}
        if instance is not None:
            body["instance"] = instance
        if request_id is not None:
            body["request_id"] = request_id
        return body


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class EmptyBody(BadRequest):
    slug, title = "empty-body", "Empty request body"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class VersionNotFound(NotFound):
    slug, title = "version-not-found", "Unknown model version"


class ReloadFailed(ServiceError):
    status, slug, title = 422, "reload-failed", "The model version could not be loaded"


class SessionNotFound(NotFound):
    slug, title = "session-not-found", "Unknown session"


class Conflict(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"


class SessionExists(Conflict):
    slug, title = "session-exists", "Session already exists"


class ClipInFlight(Conflict):
    slug, title = "clip-in-flight", "Another clip of this session is being processed"


class PayloadTooLarge(ServiceError):
    status, slug, title = 413, "payload-too-large", "Upload too large"


class UnsupportedMedia(ServiceError):
    status, slug, title = 415, "unsupported-media", "Unsupported media type, container or codec"


class Unprocessable(ServiceError):
    status, slug, title = 422, "unprocessable", "Request cannot be processed"


class Undecodable(Unprocessable):
    slug, title = "undecodable-video", "Video cannot be decoded"


class VideoLimit(Unprocessable):
    slug, title = "video-limit", "Video exceeds a limit"


class CostLimit(Unprocessable):
    """A request that would cost more than a bound allows; `bound` names the setting."""

    slug, title = "cost-limit", "Request exceeds a cost bound"

    def __init__(self, detail: str, bound: str, limit: float) -> None:
        super().__init__(detail, extra={"bound": bound, "limit": limit})


class InvalidBoxes(Unprocessable):
    slug, title = "invalid-boxes", "Invalid person boxes"


class NoPersonSource(Unprocessable):
    slug, title = "no-person-source", "No person boxes and no detector"


class Overloaded(ServiceError):
    status, slug, title = 429, "overloaded", "Too many requests in the queue"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class NotReady(ServiceError):
    status, slug, title = 503, "not-ready", "Service not ready"


class ShuttingDown(NotReady):
    slug, title = "shutting-down", "Replica shut down before answering"


class DeadlineExceeded(ServiceError):
    status, slug, title = 504, "deadline-exceeded", "Request took longer than its deadline"


class InvalidParameter(Unprocessable):
    slug, title = "invalid-parameter", "Invalid request parameter"
