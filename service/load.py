"""How busy the engine is and how fast it drains: the one rule for `Retry-After`.

A client told to come back in 1 s while answers take 11 s only adds load; the wait it is
told is the time the answers already in progress need to finish at the rate they have
been finishing (completions over a sliding window)."""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator

WINDOW_S = 30.0  # completions older than this no longer describe the load
MAX_RETRY_AFTER_S = 120


class Load:
    def __init__(self, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self.clock = window_s, clock
        self.active = 0
        self._finished: deque[float] = deque()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._finished.append(self.clock())
            self._forget_old()

    def _forget_old(self) -> None:
        horizon = self.clock() - self.window_s
        while self._finished and self._finished[0] < horizon:
            self._finished.popleft()

    def drain_rate(self) -> float | None:
        """Answers finished per second over the window; None before two of them."""
        self._forget_old()
        if len(self._finished) < 2:
            return None
        span = max(self.clock() - self._finished[0], 1e-3)
        return len(self._finished) / span

    def retry_after_s(self) -> int:
        """Whole seconds until the answers in progress (and the one asking) have drained."""
        rate = self.drain_rate()
        if rate is None:
            return 1  # nothing measured yet: the smallest honest wait
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil((self.active + 1) / rate)))
