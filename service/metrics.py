"""Prometheus collectors of the service, all in a registry the app owns.

Nothing registers at import: `Metrics(registry)` creates every collector, so each app (and
each test) has its own registry. Labels come from small fixed sets only (route templates,
stages, graphs, Redis commands), never a session or request id.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGES = ("decode", "detect", "features", "memory_read", "head", "memory_write", "serialise")
REJECT_REASONS = ("overloaded", "deadline", "too_large", "unsupported", "invalid")
MEMORY_RESULTS = ("hit", "miss", "degraded")
# seconds: from a Redis round trip (sub-millisecond) to a long video on CPU (minutes)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Every collector of the service; also the batcher's and the Redis store's observer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        http = ("route", "method", "status", "version")  # version: the model that answered
        self.http_requests = Counter("aia_http_requests_total", "HTTP requests answered",
                                     http, registry=registry)
        self.http_duration = Histogram("aia_http_request_duration_seconds",
                                       "HTTP request latency by route template", http,
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.stage_duration = Histogram("aia_stage_duration_seconds",
                                        "Time spent in each stage of a request", ("stage",),
                                        buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("aia_batch_size", "Clips (features) or key frames (head) "
                                    "per model call", ("graph",), buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.queue_depth = Gauge("aia_queue_depth", "Model jobs waiting for the executor",
                                 registry=registry)
        self.queue_wait = Histogram("aia_queue_wait_seconds", "Time a model job waited in the "
                                    "queue", buckets=LATENCY_BUCKETS, registry=registry)
        self.model_run = Histogram("aia_model_run_seconds", "Time of one batched graph call",
                                   ("graph",), buckets=LATENCY_BUCKETS, registry=registry)
        self.clips = Counter("aia_clips_total", "Clips and videos processed", registry=registry)
        self.keyframes = Counter("aia_keyframes_total", "Key frames processed",
                                 registry=registry)
        self.memory_events = Counter("aia_memory_events_total", "Memory per key frame: hit "
                                     "(some memory), miss (none), degraded (store down)",
                                     ("result",), registry=registry)
        self.redis_duration = Histogram("aia_redis_command_duration_seconds",
                                        "Redis round trips by store command", ("command",),
                                        buckets=LATENCY_BUCKETS, registry=registry)
        self.redis_errors = Counter("aia_redis_errors_total", "Failed Redis round trips",
                                    ("command",), registry=registry)
        self.active_sessions = Gauge("aia_active_sessions", "Sessions in the memory store",
                                     registry=registry)
        self.model_info = Gauge("aia_model_info", "Model versions loaded (1: serving, 0: "
                                "retired)",
                                ("version", "runtime", "device"), registry=registry)
        self.ready = Gauge("aia_ready", "1 when warmed up and not draining", registry=registry)
        self.reloads = Counter("aia_reloads_total", "Model reloads by result: switched, "
                               "unchanged, failed", ("result",), registry=registry)
        for result in ("switched", "unchanged", "failed"):
            self.reloads.labels(result)
        self.rejected = Counter("aia_rejected_total", "Requests refused before or instead of "
                                "the model", ("reason",), registry=registry)
        for stage in STAGES:
            self.stage_duration.labels(stage)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for result in MEMORY_RESULTS:
            self.memory_events.labels(result)

    def observe_stages(self, timings: Mapping[str, float]) -> None:
        """The one per-request call: seconds of each stage that ran."""
        for stage, seconds in timings.items():
            self.stage_duration.labels(stage).observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float,
                        version: str = "") -> None:
        labels = (route, method, str(status), version)
        self.http_requests.labels(*labels).inc()
        self.http_duration.labels(*labels).observe(seconds)

    # service.batcher.BatchObserver
    def on_batch(self, graph: str, size: int, wait_s: float, run_s: float) -> None:
        self.batch_size.labels(graph).observe(size)
        self.queue_wait.observe(wait_s)
        self.model_run.labels(graph).observe(run_s)

    def on_queue(self, depth: int) -> None:
        self.queue_depth.set(depth)

    # service.store.RedisStore observer
    def on_redis(self, command: str, seconds: float, ok: bool) -> None:
        self.redis_duration.labels(command).observe(seconds)
        if not ok:
            self.redis_errors.labels(command).inc()
