"""service.state.Service: the allocator trim that runs beside the requests."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import CollectorRegistry

from service import state
from service.metrics import Metrics
from service.settings import Settings


def test_trim_runs_every_period_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    monkeypatch.setattr(state, "trim", lambda: threads.append(threading.current_thread()))
    service = state.Service(Settings(), Metrics(CollectorRegistry()))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(service._trim_memory(0.02), 0.2)

    asyncio.run(main())
    assert len(threads) >= 3
    assert threading.main_thread() not in threads  # the event loop's thread never trims
