"""Dynamic batching: merged calls give each request exactly its unbatched result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from exporters.artifact import InputSpec, load_artifact
from service.batcher import Batcher
from service.errors import NotReady, Overloaded
from service.runtime import Runtime, load_runtime
from service.settings import Device, RuntimeKind


class Seen:
    """A BatchObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, float, float]] = []
        self.depths: list[int] = []

    def on_batch(self, graph: str, size: int, wait_s: float, run_s: float) -> None:
        self.batches.append((graph, size, wait_s, run_s))

    def on_queue(self, depth: int) -> None:
        self.depths.append(depth)

    def sizes(self, graph: str) -> list[int]:
        return [size for g, size, _, _ in self.batches if g == graph]


class Counting:
    """The real ONNX runtime, counting the rows each call gets; head masks as asked."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.rows = runtime, []
        self.name, self.device = runtime.name, runtime.device

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.rows.append(len(boxes))
        return self.runtime.features(clip, boxes)

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        self.rows.append(len(inputs[0]))
        return self.runtime.head(*inputs)


@pytest.fixture(scope="module")
def spec(random_artifact: Path) -> InputSpec:
    return load_artifact(random_artifact).input


@pytest.fixture(scope="module")
def runtime(random_artifact: Path) -> Runtime:
    return load_runtime(load_artifact(random_artifact), RuntimeKind.onnx, Device.cpu)


def features_request(spec: InputSpec, rng: np.random.Generator, persons: Sequence[int],
                     size: tuple[int, int] = (48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """len(persons) clips of h x w, persons[b] boxes in clip b."""
    h, w = size
    clip = rng.integers(0, 256, (len(persons), spec.frames, h, w, 3), dtype=np.uint8)
    index = np.repeat(np.arange(len(persons)), persons)
    corners = np.sort(rng.uniform(0, 1, (len(index), 2, 2)), axis=1) * np.array([w, h])
    boxes = np.concatenate([index[:, None], corners.reshape(-1, 4)], axis=1)  # [K,5]
    return clip, boxes.astype(np.float32)


def head_request(spec: InputSpec, rng: np.random.Generator, persons: Sequence[int],
                 objects: int, memory_fill: float) -> tuple[np.ndarray, ...]:
    """Head inputs for len(persons) clips: `objects` object slots (the last one masked when
    there are several), the first memory_fill of the full memory window filled."""
    b, d = len(persons), spec.feature_dim
    seconds = spec.window.slot_seconds()
    m = round(len(seconds) * memory_fill)
    object_mask = np.ones((b, objects), bool)
    if objects > 1:
        object_mask[:, -1] = False
    memory_mask = np.ones((b, m), bool)
    memory_mask[:, m // 2:] = rng.random((b, m - m // 2)) < 0.5
    return (rng.standard_normal((sum(persons), d)).astype(np.float32),
            np.repeat(np.arange(b), persons).astype(np.int64),
            rng.standard_normal((b, objects, d)).astype(np.float32), object_mask,
            rng.standard_normal((b, m, d)).astype(np.float32), memory_mask,
            np.broadcast_to(seconds[:m], (b, m)).astype(np.int64))


def test_batched_results_equal_unbatched(runtime: Runtime, spec: InputSpec) -> None:
    rng = np.random.default_rng(0)
    features_in = [features_request(spec, rng, p) for p in ([0], [1], [7], [2, 3], [4])]
    odd_size = features_request(spec, rng, [2], size=(56, 40))
    head_in = [head_request(spec, rng, p, o, f) for p, o, f in (
        ([0], 0, 0.0), ([1], 2, 1.0), ([9], 5, 0.5), ([3, 0], 3, 1.0), ([2], 1, 0.0))]
    seen = Seen()

    async def serve() -> tuple[list[np.ndarray], list[np.ndarray]]:
        batcher = Batcher(runtime, max_batch=8, max_wait_ms=50, queue_size=32, observer=seen)
        got = await asyncio.gather(*(batcher.features(*r) for r in [*features_in, odd_size]),
                                   *(batcher.head(*r) for r in head_in))
        await batcher.close()
        return got[:6], got[6:]

    features_out, head_out = asyncio.run(serve())
    for request, got in zip([*features_in, odd_size], features_out, strict=True):
        assert got.shape == (len(request[1]), spec.feature_dim)
        np.testing.assert_allclose(got, runtime.features(*request), atol=1e-5, rtol=0)
    for request, got in zip(head_in, head_out, strict=True):
        assert got.shape == (len(request[0]), spec.num_classes)
        np.testing.assert_allclose(got, runtime.head(*request), atol=1e-5, rtol=0)
    # five 48x64 requests (6 clips) share one call; the 40x56 one runs alone
    assert sorted(seen.sizes("features")) == [1, 6]
    assert seen.sizes("head") == [6]
    assert all(wait >= 0 and run > 0 for _, _, wait, run in seen.batches)
    assert max(seen.depths) >= 5
    assert seen.depths[-1] == 0


def test_max_batch_bounds_the_clips_of_a_call(runtime: Runtime, spec: InputSpec) -> None:
    rng = np.random.default_rng(1)
    requests = [features_request(spec, rng, [1]) for _ in range(5)]
    seen = Seen()

    async def serve() -> list[np.ndarray]:
        batcher = Batcher(runtime, max_batch=2, max_wait_ms=20, queue_size=8, observer=seen)
        got = await asyncio.gather(*(batcher.features(*r) for r in requests))
        await batcher.close()
        return got

    for request, got in zip(requests, asyncio.run(serve()), strict=True):
        np.testing.assert_allclose(got, runtime.features(*request), atol=1e-5, rtol=0)
    assert seen.sizes("features") == [2, 2, 1]


def test_a_job_that_does_not_fit_is_passed_over_not_compared(runtime: Runtime,
                                                            spec: InputSpec) -> None:
    """Clips 5, 5, 2 with max_batch 8: the second waits and the third joins the first. The
    queue once found the third by comparing it with the second (dataclass equality over
    numpy inputs raised), which killed the collector: every request after hung."""
    rng = np.random.default_rng(4)
    requests = [features_request(spec, rng, [1] * clips) for clips in (5, 5, 2)]
    seen = Seen()

    async def serve() -> list[np.ndarray]:
        batcher = Batcher(runtime, max_batch=8, max_wait_ms=20, queue_size=8, observer=seen)
        got = await asyncio.wait_for(
            asyncio.gather(*(batcher.features(*r) for r in requests)), timeout=30)
        await batcher.close()
        return got

    for request, got in zip(requests, asyncio.run(serve()), strict=True):
        np.testing.assert_allclose(got, runtime.features(*request), atol=1e-5, rtol=0)
    assert seen.sizes("features") == [7, 5]


def test_a_collector_bug_fails_its_jobs_and_the_next_batch_runs(runtime: Runtime,
                                                                spec: InputSpec) -> None:
    rng = np.random.default_rng(5)
    first, later = (features_request(spec, rng, [1]) for _ in range(2))

    async def serve() -> tuple[BaseException | np.ndarray, np.ndarray]:
        batcher = Batcher(runtime, max_batch=8, max_wait_ms=0, queue_size=8)
        take = batcher._take_matching

        def broken(batch: list, clips: int) -> int:
            batcher._take_matching = take  # type: ignore[method-assign]
            raise RuntimeError("a bug while gathering")

        batcher._take_matching = broken  # type: ignore[method-assign]
        failed = await asyncio.gather(batcher.features(*first), return_exceptions=True)
        answered = await asyncio.wait_for(batcher.features(*later), timeout=30)
        await batcher.close()
        return failed[0], answered

    failed, answered = asyncio.run(serve())
    assert isinstance(failed, RuntimeError)
    np.testing.assert_allclose(answered, runtime.features(*later), atol=1e-5, rtol=0)


def test_full_queue_is_overloaded_with_retry_after(runtime: Runtime, spec: InputSpec) -> None:
    rng = np.random.default_rng(3)
    requests = [features_request(spec, rng, [1]) for _ in range(3)]

    async def serve() -> list[np.ndarray | BaseException]:
        batcher = Batcher(runtime, max_batch=8, max_wait_ms=0, queue_size=2)
        # three tasks enqueue before the collector first runs: the third finds 2 queued
        got = await asyncio.gather(*(batcher.features(*r) for r in requests),
                                   return_exceptions=True)
        await batcher.close()
        return got

    first, second, third = asyncio.run(serve())
    assert isinstance(third, Overloaded)
    assert third.status == 429
    assert int(third.headers["Retry-After"]) >= 1
    for request, got in zip(requests, (first, second), strict=False):
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, runtime.features(*request), atol=1e-5, rtol=0)


def test_graph_errors_reach_every_request_of_the_batch(runtime: Runtime,
                                                       spec: InputSpec) -> None:
    rng = np.random.default_rng(4)
    good = head_request(spec, rng, [2], 1, 1.0)
    bad = (np.zeros((2, spec.feature_dim + 1), np.float32), *good[1:])  # wrong feature width

    async def serve() -> tuple[list[np.ndarray | BaseException], np.ndarray]:
        batcher = Batcher(runtime, max_batch=8, max_wait_ms=20, queue_size=8)
        got = await asyncio.gather(batcher.head(*good), batcher.head(*bad),
                                   return_exceptions=True)
        after = await batcher.head(*good)  # the worker survives
        await batcher.close()
        return got, after

    (first, second), after = asyncio.run(serve())
    assert isinstance(first, Exception)
    assert isinstance(second, Exception)
    np.testing.assert_allclose(after, runtime.head(*good), atol=1e-5, rtol=0)


def test_cancelled_requests_are_skipped(runtime: Runtime, spec: InputSpec) -> None:
    rng = np.random.default_rng(5)
    dropped, kept = features_request(spec, rng, [5]), features_request(spec, rng, [2])
    counting = Counting(runtime)

    async def serve() -> np.ndarray:
        batcher = Batcher(counting, max_batch=8, max_wait_ms=20, queue_size=8)
        gone = asyncio.create_task(batcher.features(*dropped))
        await asyncio.sleep(0)  # enqueued
        gone.cancel()
        got = await batcher.features(*kept)
        await batcher.close()
        assert gone.cancelled()
        return got

    got = asyncio.run(serve())
    assert counting.rows == [2]
    np.testing.assert_allclose(got, runtime.features(*kept), atol=1e-5, rtol=0)


def test_close_drains_then_refuses(runtime: Runtime, spec: InputSpec) -> None:
    rng = np.random.default_rng(6)
    requests = [features_request(spec, rng, [1]) for _ in range(4)]

    async def serve() -> tuple[list[np.ndarray], NotReady | None]:
        batcher = Batcher(runtime, max_batch=1, max_wait_ms=0, queue_size=8)
        tasks = [asyncio.create_task(batcher.features(*r)) for r in requests]
        await asyncio.sleep(0)
        await batcher.close()
        done = await asyncio.wait_for(asyncio.gather(*tasks), 1.0)  # run by close(), not lost
        try:
            await batcher.features(*requests[0])
        except NotReady as err:
            return done, err
        return done, None

    done, refused = asyncio.run(serve())
    assert len(done) == 4
    assert refused is not None
    assert refused.status == 503


class Broken(Seen):
    def on_batch(self, graph: str, size: int, wait_s: float, run_s: float) -> None:
        raise RuntimeError("metrics backend down")


def test_a_failing_observer_does_not_stop_the_worker(runtime: Runtime,
                                                     spec: InputSpec) -> None:
    rng = np.random.default_rng(7)
    requests = [features_request(spec, rng, [1]) for _ in range(2)]

    async def serve() -> list[np.ndarray]:
        batcher = Batcher(runtime, max_batch=1, max_wait_ms=0, queue_size=8, observer=Broken())
        got = [await batcher.features(*r) for r in requests]
        await batcher.close()
        return got

    for request, got in zip(requests, asyncio.run(serve()), strict=True):
        np.testing.assert_allclose(got, runtime.features(*request), atol=1e-5, rtol=0)
