"""Every request's deadline, and the end of the drain that can bring it forward.

A request runs inside `Cutoff.deadline`: past `AIA_REQUEST_TIMEOUT_S` it is a 504. When a
stop signal arrives the drain begins: requests still running when the drain is nearly over
are cut off with a 503 problem (+ Retry-After) that says the replica is shutting down, before
uvicorn's own graceful-shutdown timeout would cancel them into a plain-text 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from service.errors import DeadlineExceeded, ShuttingDown

DRAIN_MARGIN_S = 1.0  # cut requests off this long before the listener's own timeout


def cutoff_after(drain_s: float) -> float:
    """Seconds from the stop signal to the cut-off, inside uvicorn's `drain_s` timeout."""
    return max(0.0, drain_s - min(DRAIN_MARGIN_S, drain_s / 4))


class Cutoff:
    def __init__(self) -> None:
        self._timeouts: set[asyncio.Timeout] = set()
        self._cut_at: float | None = None  # loop time of the cut-off, once draining
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        when = loop.time() + seconds
        try:
            async with asyncio.timeout_at(when) as timeout:
                self._timeouts.add(timeout)
                if self._cut_at is not None:
                    timeout.reschedule(min(when, self._cut_at))
                try:
                    yield
                finally:
                    self._timeouts.discard(timeout)
        except TimeoutError:
            if self._cut_at is not None and loop.time() >= self._cut_at:
                raise ShuttingDown("this replica shut down before the request finished; "
                                   "retry (another replica will answer)",
                                   headers={"Retry-After": "1"}) from None
            raise DeadlineExceeded(f"the request took longer than {seconds:g} s; send a "
                                   "shorter video or retry when the service is less busy"
                                   ) from None

    def begin(self, after_s: float) -> None:
        """The drain began: cut every request off `after_s` from now. Safe to call from a
        signal handler (it only schedules the work on the loop)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cut, after_s)

    def _cut(self, after_s: float) -> None:
        assert self._loop is not None
        self._cut_at = self._loop.time() + after_s
        for timeout in self._timeouts:
            when = timeout.when()
            timeout.reschedule(self._cut_at if when is None else min(when, self._cut_at))
