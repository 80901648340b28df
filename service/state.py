"""The running service's state: the model version served, readiness, reloads, the drain.

`Service.start` (called by the lifespan) checks the artifact (a bad one stops the process
with the file to fix; with AIA_MODELS_DIR it is the version `current` names), builds its
memory store (Redis when `AIA_REDIS_URL` is set, else in-process) and loads and warms the
runtime in the background; /health/ready turns true only after that. `Service.reload`
switches versions without dropping a request (service/versions.py); SIGHUP, the pointer
watch and `POST /v1/admin/reload` call it. `Service.stop`: readiness false, in-flight
requests finish (up to `drain_s`), then batchers and stores close. The builders here are
shared with `aia detect`.
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
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from exporters.artifact import Artifact, ArtifactError, load_artifact
from exporters.models_dir import artifact_version, read_pointer, version_path
from service.cutoff import Cutoff, cutoff_after
from service.decode import Limits
from service.engine import Engine
from service.errors import NotReady, ReloadFailed, ServiceError, VersionNotFound
from service.malloc import trim
from service.metrics import Metrics
from service.middleware import InFlight
from service.schemas import ModelRef
from service.settings import Settings
from service.store import MemoryStore
from service.versions import (
    LoadedVersion,
    Versions,
    artifact_formats,
    build_engine,
    load_detector,
    load_version,
    model_ref,
    model_version,
    retire,
)

__all__ = ["Service", "artifact_formats", "build_engine", "honesty_warning", "load_detector",
           "model_ref", "model_version"]

log = logging.getLogger("aia.service")


def honesty_warning(artifact: Artifact) -> str | None:
    """Said once at start-up (and by `aia detect`) when the actions are not real ones."""
    data = artifact.dataset
    if data.real_footage:
        return None
    return (f"the action model {artifact.root.name!r} was trained on {data.name} "
            f"({data.label_set}), synthetic video only: its actions mean nothing on real "
            f"footage; the persons come from the detector. For real actions serve the "
            f"paper's AVA models: README, section \"Serving the paper's models\"")


@dataclass
class Service:
    """Everything the routes need, built by the lifespan: the version being served (and
    those it replaced, until their requests end), readiness, the drain."""

    settings: Settings
    metrics: Metrics
    in_flight: InFlight = field(default_factory=InFlight)
    current: LoadedVersion | None = None
    previous: str | None = None  # the version served before `current` (rollback)
    artifact: Artifact | None = None  # of the version being (or about to be) served
    model: ModelRef | None = None
    store: MemoryStore | None = None
    upload_dir: Path | None = None
    ready: bool = False
    draining: bool = False
    failed: str | None = None
    cutoff: Cutoff = field(default_factory=Cutoff)  # deadlines, and the drain's end
    versions: Versions | None = None
    retiring: list[LoadedVersion] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _warming: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def limits(self) -> Limits:
        return Limits.from_settings(self.settings)

    @property
    def engine(self) -> Engine | None:
        return self.current.engine if self.current is not None else None

    def served_path(self, version: str | None = None) -> Path:
        """The artifact to serve: the models directory's `current` (or `version`), else
        AIA_MODEL_DIR."""
        models_dir = self.settings.models_dir
        if models_dir is not None:
            return version_path(models_dir, version)
        if version is not None and version != artifact_version(self.settings.model_dir):
            raise ArtifactError(f"{version!r}: without AIA_MODELS_DIR only the artifact in "
                                f"{self.settings.model_dir} can be served")
        return self.settings.model_dir

    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.cutoff.bind(self._loop)
        self.versions = Versions(s, self.metrics)
        path = await anyio.to_thread.run_sync(self.served_path)
        self.artifact = await anyio.to_thread.run_sync(load_artifact, path,
                                                       artifact_formats(s))
        version = model_version(self.artifact)
        self.model = model_ref(self.artifact, s.runtime.value, "pending", s.detector)
        if (warning := honesty_warning(self.artifact)) is not None:
            log.warning(warning, extra={"model": version})
        self.store = self.versions.store(version)
        self.upload_dir = Path(tempfile.mkdtemp(prefix="aia-uploads-"))
        self._warming = asyncio.create_task(self._warm(self.artifact), name="aia-warm-up")
        self._listen_for_reloads()
        if s.malloc_trim_s > 0:
            self._spawn(self._trim_memory(s.malloc_trim_s))
        log.info("starting", extra={"model": version, "runtime": s.runtime.value,
                                    "trained_on": self.model.trained_on,
                                    "detector": self.model.detector,
                                    "store": "redis" if s.redis_url else "local"})

    async def _warm(self, artifact: Artifact) -> None:
        """Load the graphs and run them once off the event loop; then ready."""
        assert self.versions is not None
        try:
            loaded = await load_version(artifact, self.settings, self.metrics, self.versions)
        except Exception as err:  # the process cannot serve: say why and stop
            self.failed = f"{type(err).__name__}: {err}"
            log.exception("model load failed; stopping")
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self._serve(loaded)
        self.ready = not self.draining
        self.metrics.ready.set(1 if self.ready else 0)
        log.info("ready", extra={"model": loaded.version, "device": loaded.runtime.device})

    def _serve(self, loaded: LoadedVersion) -> None:
        self.current, self.artifact, self.model = loaded, loaded.artifact, loaded.model
        self.store = loaded.engine.store
        self.metrics.model_info.labels(loaded.version, loaded.runtime.name,
                                       loaded.runtime.device).set(1)

    async def reload(self, version: str | None = None) -> tuple[ModelRef, str | None]:
        """Serve `version` (None: what the models directory's `current` names, or
        AIA_MODEL_DIR again): load and warm it beside the served one, then switch. Requests
        already running finish on the old version, which is freed after them. A version
        that fails to load is refused (ReloadFailed) and the old one keeps serving."""
        async with self._reload_lock:
            if self.current is None or self.versions is None:
                raise NotReady("the first model is still loading; retry",
                               headers={"Retry-After": "1"})
            try:
                path = await anyio.to_thread.run_sync(self.served_path, version)
            except ArtifactError as err:
                self.metrics.reloads.labels("failed").inc()
                raise VersionNotFound(str(err)) from None
            if await anyio.to_thread.run_sync(artifact_version, path) == self.current.version:
                self.metrics.reloads.labels("unchanged").inc()
                return self.current.model, self.previous
            try:
                artifact = await anyio.to_thread.run_sync(load_artifact, path,
                                                          artifact_formats(self.settings))
                loaded = await load_version(artifact, self.settings, self.metrics,
                                            self.versions)
            except Exception as err:
                self.metrics.reloads.labels("failed").inc()
                log.exception("reload refused; the served version keeps serving",
                              extra={"model": self.current.version})
                raise ReloadFailed(f"{path}: {type(err).__name__}: {err}; still serving "
                                   f"{self.current.version}") from err
            old = self.current
            self._serve(loaded)
            self.previous = old.version
            self.metrics.reloads.labels("switched").inc()
            log.info("switched", extra={"from": old.version, "to": loaded.version})
            self.retiring.append(old)
            self._spawn(self._retire(old))
            return loaded.model, self.previous

    async def _retire(self, old: LoadedVersion) -> None:
        await retire(old, self.metrics)
        self.retiring.remove(old)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload_quietly(self, why: str) -> None:
        """A reload nobody waits for (SIGHUP, the pointer watch): the outcome is logged."""
        with contextlib.suppress(ServiceError):
            model, _ = await self.reload()
            log.info("reloaded", extra={"trigger": why, "model": model.version})

    async def _trim_memory(self, every_s: float) -> None:
        """Free pages back to the system now and then, so RSS follows the memory in use
        (service/malloc.py); a thread, since trimming holds the allocator's locks."""
        while True:
            await asyncio.sleep(every_s)
            await anyio.to_thread.run_sync(trim)

    def _listen_for_reloads(self) -> None:
        """SIGHUP reloads; with AIA_MODELS_WATCH_S, so does a change of `current`."""
        assert self._loop is not None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(
                signal.SIGHUP, lambda: self._spawn(self.reload_quietly("SIGHUP")))
        if self.settings.models_dir is not None and self.settings.models_watch_s > 0:
            self._spawn(self._watch_pointer(self.settings.models_dir))

    async def _watch_pointer(self, models_dir: Path) -> None:
        refused: str | None = None  # a broken version is tried once, not every tick
        while not self.draining:
            await asyncio.sleep(self.settings.models_watch_s)
            with contextlib.suppress(ArtifactError, OSError):
                wanted = read_pointer(models_dir)
                if self.current is not None and wanted not in (self.current.version, refused):
                    try:
                        await self.reload()
                        refused = None
                    except ServiceError:
                        refused = wanted

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
        for task in list(self._tasks):
            task.cancel()
        for loaded in [*self.retiring, *([self.current] if self.current else [])]:
            await loaded.batcher.close()
        if self.versions is not None:
            await self.versions.close()
        if self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)
        log.info("stopped")
