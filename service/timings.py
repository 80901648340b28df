"""Seconds per stage of one request, for the engine's single metrics observation."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Timings:
    """Seconds per stage of one request (summed over chunks)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


async def timed(timings: Timings, name: str, work: Awaitable[T]) -> T:
    with timings.stage(name):
        return await work
