"""The running service's state: the loaded model, its store and engine, readiness.

`Service.start` (called by the lifespan) checks the artifact (a bad one stops the process
with the file to fix), builds the memory store (Redis when `AIA_REDIS_URL` is set, else
in-process) and loads and warms the runtime in the background; /health/ready turns true only
after that. `Service.stop`: readiness false, in-flight requests finish (up to `drain_s`), then
the batcher and the store close. The builders here are shared with `aia detect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from exporters.artifact import MANIFEST, Artifact, load_artifact, sha256
from service.batcher import Batcher
from service.cutoff import Cutoff, cutoff_after
from service.decode import Limits
from service.detection import Detector
from service.engine import Engine
from service.metrics import Metrics
from service.middleware import InFlight
from service.runtime import Runtime, load_runtime, warm_up
from service.schemas import ModelRef
from service.settings import RuntimeKind, Settings
from service.stages import EngineOptions, ServedModel
from service.store import LocalStore, MemoryStore, RedisStore

log = logging.getLogger("aia.service")


def model_version(artifact: Artifact) -> str:
    """The artifact's name and the start of its manifest's sha256: a new export, new keys."""
    return f"{artifact.root.name}-{sha256(artifact.root / MANIFEST)[:12]}"


def load_detector(artifact: Artifact, device: str, name: str | None = None,
                  min_score: float | None = None) -> Detector | None:
    """The artifact's detector called `name` (None: its default) that finds persons and
    objects when a request has no boxes, keeping scores >= min_score (None: the graph's
    threshold); None when the artifact has none."""
    spec = artifact.choose_detector(name)
    if spec is None:
        return None
    from exporters.detector_runtime import DetectorRunner

    providers = (("CUDAExecutionProvider", "CPUExecutionProvider") if device.startswith("cuda")
                 else ("CPUExecutionProvider",))
    floor = spec.score_threshold if min_score is None else max(min_score, spec.score_threshold)
    return DetectorRunner(spec, providers, min_score=floor)


def model_ref(artifact: Artifact, runtime: str, device: str,
              detector: str | None = None) -> ModelRef:
    """The `model` block of every answer: what is served and what it was trained on."""
    chosen = artifact.choose_detector(detector)
    data = artifact.dataset
    return ModelRef(name=artifact.root.name, version=model_version(artifact), runtime=runtime,
                    device=device, trained_on=data.name, label_set=data.label_set,
                    real_footage=data.real_footage,
                    detector=chosen.name if chosen is not None else None)


def honesty_warning(artifact: Artifact) -> str | None:
    """Said once at start-up (and by `aia detect`) when the actions are not real ones."""
    data = artifact.dataset
    if data.real_footage:
        return None
    return (f"the action model {artifact.root.name!r} was trained on {data.name} "
            f"({data.label_set}), synthetic video only: its actions mean nothing on real "
            f"footage; the persons come from the detector. For real actions serve the "
            f"paper's AVA models: README, section \"Serving the paper's models\"")


def artifact_formats(settings: Settings) -> tuple[str, ...]:
    """The graph files the chosen runtime reads (eager rebuilds from the TorchScript ones)."""
    return ("onnx",) if settings.runtime is RuntimeKind.onnx else ("torchscript",)


def build_engine(settings: Settings, served: ServedModel, store: MemoryStore,
                 metrics: Metrics) -> Engine:
    """The engine as the settings configure it: one place for the service and `aia detect`."""
    return Engine(served, store, metrics, EngineOptions.from_settings(settings))


@dataclass
class Service:
    """Everything the routes need, built by the lifespan."""

    settings: Settings
    metrics: Metrics
    in_flight: InFlight = field(default_factory=InFlight)
    artifact: Artifact | None = None
    model: ModelRef | None = None
    store: MemoryStore | None = None
    runtime: Runtime | None = None
    batcher: Batcher | None = None
    engine: Engine | None = None
    upload_dir: Path | None = None
    ready: bool = False
    draining: bool = False
    failed: str | None = None
    cutoff: Cutoff = field(default_factory=Cutoff)  # deadlines, and the drain's end
    _warming: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def limits(self) -> Limits:
        return Limits.from_settings(self.settings)

    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.cutoff.bind(self._loop)
        self.artifact = await anyio.to_thread.run_sync(load_artifact, s.model_dir,
                                                       artifact_formats(s))
        version = model_version(self.artifact)
        self.model = model_ref(self.artifact, s.runtime.value, "pending", s.detector)
        if (warning := honesty_warning(self.artifact)) is not None:
            log.warning(warning, extra={"model": version})
        if s.redis_url:
            self.store = RedisStore(s.redis_url, version, s.session_max_seconds,
                                    s.redis_timeout_s, observer=self.metrics.on_redis)
        else:
            self.store = LocalStore(version, s.session_ttl_s, s.session_max_seconds,
                                    s.local_max_sessions)
        self.upload_dir = Path(tempfile.mkdtemp(prefix="aia-uploads-"))
        self._warming = asyncio.create_task(self._warm(), name="aia-warm-up")
        log.info("starting", extra={"model": version, "runtime": s.runtime.value,
                                    "trained_on": self.model.trained_on,
                                    "detector": self.model.detector,
                                    "store": "redis" if s.redis_url else "local"})

    async def _warm(self) -> None:
        """Load the graphs and run them once off the event loop; then ready."""
        s, artifact = self.settings, self.artifact
        assert artifact is not None
        assert self.model is not None
        assert self.store is not None
        try:
            started = time.perf_counter()
            runtime = await anyio.to_thread.run_sync(load_runtime, artifact, s.runtime, s.device)
            await anyio.to_thread.run_sync(warm_up, runtime, artifact.input)
            detector = await anyio.to_thread.run_sync(load_detector, artifact, runtime.device,
                                                      s.detector, s.detector_min_score)
        except Exception as err:  # the process cannot serve: say why and stop
            self.failed = f"{type(err).__name__}: {err}"
            log.exception("model load failed; stopping")
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.runtime = runtime
        self.model = self.model.model_copy(update={"runtime": runtime.name,
                                                   "device": runtime.device})
        self.batcher = Batcher(runtime, s.max_batch, s.max_wait_ms, s.queue_size,
                               observer=self.metrics)
        self.engine = build_engine(s, ServedModel(artifact, self.model, self.batcher, detector),
                                   self.store, self.metrics)
        self.metrics.model_info.labels(self.model.version, runtime.name, runtime.device).set(1)
        self.ready = not self.draining
        self.metrics.ready.set(1 if self.ready else 0)
        log.info("ready", extra={"warm_up_s": round(time.perf_counter() - started, 3),
                                 "device": runtime.device})

    def drain(self) -> None:
        """Readiness off at once: load balancers stop sending before the listener closes.
        Called from the stop signal's handler, so the rest (a metric's lock, the cut-off of
        requests still running at the end of the drain) runs on the loop, not in it."""
        self.draining, self.ready = True, False
        if self._loop is None or self._loop.is_closed():
            self.metrics.ready.set(0)
            return
        self._loop.call_soon_threadsafe(self.metrics.ready.set, 0)
        self.cutoff.begin(cutoff_after(self.settings.drain_s))

    async def stop(self) -> None:
        self.drain()
        deadline = time.monotonic() + self.settings.drain_s
        while self.in_flight.count > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        if self.batcher is not None:
            await self.batcher.close()
        if self.store is not None:
            await self.store.close()
        if self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)
        log.info("stopped")
