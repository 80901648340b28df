"""Dynamic batching of model calls across concurrent requests.

Requests await `features(...)` / `head(...)`; each call becomes a job in a bounded queue. One
collector task takes the oldest job, gathers more jobs of the same graph (features: the same
frame size) for up to `max_wait_ms` or until `max_batch` clips, joins them into one call
(clip indices offset, the head's object/memory slots padded with masks off), runs it on the
ONE worker thread that does all model work, and hands each request its rows back. Errors of
a batch go to every request in it; jobs whose request was cancelled are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service.errors import NotReady, Overloaded
from service.runtime import Runtime

FEATURES, HEAD = "features", "head"
log = logging.getLogger(__name__)


class BatchObserver(Protocol):
    def on_batch(self, graph: str, size: int, wait_s: float, run_s: float) -> None:
        """One model call: `size` clips, the oldest job's queue wait, the call's run time."""

    def on_queue(self, depth: int) -> None:
        """Jobs waiting (not yet running), after every change."""


# eq=False: a job is itself, never equal to another; deque.remove then matches by identity
# (field equality compared numpy inputs, raised, and killed the collector)
@dataclass(eq=False)
class Job:
    graph: str
    key: Hashable  # jobs with equal keys may share a model call
    inputs: tuple[np.ndarray, ...]
    clips: int
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


def merge_features(jobs: Sequence[Job]) -> tuple[tuple[np.ndarray, np.ndarray], list[int]]:
    """Clips [B_i,T,H,W,3] and boxes [K_i,5] -> one call's inputs + rows per job."""
    clips = np.concatenate([j.inputs[0] for j in jobs])  # [sum B_i,T,H,W,3]
    boxes, rows, offset = [], [], 0
    for job in jobs:
        shifted = np.array(job.inputs[1], dtype=np.float32, copy=True).reshape(-1, 5)
        shifted[:, 0] += offset
        boxes.append(shifted)
        rows.append(len(shifted))
        offset += job.clips
    return (clips, np.concatenate(boxes)), rows


def _pad_slots(array: np.ndarray, width: int) -> np.ndarray:
    """[B,S,...] -> [B,width,...] with zeros (False for masks) after the S given slots."""
    pad = [(0, 0), (0, width - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad)


def merge_head(jobs: Sequence[Job]) -> tuple[tuple[np.ndarray, ...], list[int]]:
    """Each job's seven head inputs -> one call's inputs + persons per job. Person clip
    indices are offset; objects [B,O,D] and memory [B,M,D] padded to the widest job."""
    widest_o = max(j.inputs[2].shape[1] for j in jobs)
    widest_m = max(j.inputs[4].shape[1] for j in jobs)
    parts: list[list[np.ndarray]] = [[] for _ in range(7)]
    rows, offset = [], 0
    for job in jobs:
        feats, batch, objects, object_mask, memory, memory_mask, seconds = job.inputs
        parts[0].append(feats)
        parts[1].append(np.asarray(batch, np.int64) + offset)
        parts[2].append(_pad_slots(objects, widest_o))
        parts[3].append(_pad_slots(np.asarray(object_mask, bool), widest_o))
        parts[4].append(_pad_slots(memory, widest_m))
        parts[5].append(_pad_slots(np.asarray(memory_mask, bool), widest_m))
        parts[6].append(_pad_slots(np.asarray(seconds, np.int64), widest_m))
        rows.append(len(feats))
        offset += job.clips
    return tuple(np.concatenate(p) for p in parts), rows


class Batcher:
    def __init__(self, runtime: Runtime, max_batch: int, max_wait_ms: float, queue_size: int,
                 observer: BatchObserver | None = None) -> None:
        self.runtime = runtime
        self.max_batch, self.max_wait_s = max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self.queue_size, self.observer = queue_size, observer
        self._pending: deque[Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._collector: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aia-model")
        self._closing = False

    async def features(self, clips: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """One request's clips uint8 [B,T,H,W,3] + boxes [K,5] -> float32 [K,D]."""
        key = (FEATURES, clips.shape[1:])
        return await self._submit(FEATURES, key, (clips, boxes), clips.shape[0])

    async def head(self, *inputs: np.ndarray) -> np.ndarray:
        """One request's seven head inputs (head_spec order) -> logits float32 [N,A]."""
        if len(inputs) != 7:
            raise TypeError(f"head takes 7 inputs, got {len(inputs)}")
        objects = inputs[2]
        # padded object and memory slots never change an answer (masked, or with masks off
        # counted inside the graph), so every head call may share a batch
        return await self._submit(HEAD, (HEAD,), tuple(inputs), objects.shape[0])

    async def _submit(self, graph: str, key: Hashable, inputs: tuple[np.ndarray, ...],
                      clips: int) -> np.ndarray:
        if self._closing:
            raise NotReady("the model worker is shutting down; retry on another replica")
        if len(self._pending) >= self.queue_size:
            # the wait to tell the client is the engine's (service.load), not the queue's
            raise Overloaded(f"{len(self._pending)} model jobs are queued (the limit); retry "
                             "after the Retry-After seconds")
        loop = asyncio.get_running_loop()
        if self._collector is None:
            self._wakeup = asyncio.Event()
            self._collector = loop.create_task(self._collect(), name="aia-batcher")
        job = Job(graph, key, inputs, clips, loop.create_future())
        self._pending.append(job)
        self._notify_queue()
        assert self._wakeup is not None
        self._wakeup.set()
        return await job.future

    def _notify_queue(self) -> None:
        if self.observer is not None:
            try:
                self.observer.on_queue(len(self._pending))
            except Exception:  # metrics must never stop the collector
                log.exception("batch observer failed")

    def _take_matching(self, batch: list[Job], clips: int) -> int:
        """Moves pending jobs that fit `batch` into it, oldest first; returns its clips."""
        key = batch[0].key
        for job in list(self._pending):
            if job.future.done():  # cancelled while queued
                self._pending.remove(job)
            elif job.key == key and clips + job.clips <= self.max_batch:
                self._pending.remove(job)
                batch.append(job)
                clips += job.clips
        return clips

    async def _gather(self, first: Job) -> list[Job]:
        assert self._wakeup is not None
        batch = [first]
        clips = self._take_matching(batch, first.clips)
        deadline = time.perf_counter() + self.max_wait_s
        while clips < self.max_batch and not self._closing:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                break
            clips = self._take_matching(batch, clips)
        self._notify_queue()
        return batch

    async def _collect(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            first = self._pending.popleft()
            if first.future.done():
                self._notify_queue()
                continue
            batch = [first]
            try:
                batch = await self._gather(first)
                live = [j for j in batch if not j.future.done()]
                if live:
                    await self._run(live)
            except Exception as err:  # a bug here must fail its requests, never hang them
                log.exception("batch collector failed; its jobs fail, the next batch runs")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)

    async def _run(self, batch: list[Job]) -> None:
        graph = batch[0].graph
        merge = merge_features if graph == FEATURES else merge_head
        call = self.runtime.features if graph == FEATURES else self.runtime.head
        started = time.perf_counter()
        wait_s = started - min(j.enqueued for j in batch)
        try:
            inputs, rows = merge(batch)
            out = await asyncio.get_running_loop().run_in_executor(self._executor, call, *inputs)
        except Exception as err:  # the graph's error is every request's error
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        run_s = time.perf_counter() - started
        bounds = np.cumsum([0, *rows])  # job i owns rows bounds[i]:bounds[i + 1] of out
        for job, start, end in zip(batch, bounds[:-1], bounds[1:], strict=True):
            if not job.future.done():
                job.future.set_result(out[start:end])
        if self.observer is not None:
            try:
                self.observer.on_batch(graph, sum(j.clips for j in batch), wait_s, run_s)
            except Exception:
                log.exception("batch observer failed")

    async def close(self) -> None:
        """Refuses new jobs, runs every queued one, then stops the worker thread."""
        self._closing = True
        if self._collector is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            await self._collector
        self._executor.shutdown(wait=True)
