"""service.cutoff: a request's deadline, brought forward by the end of the drain."""

from __future__ import annotations

import asyncio

import pytest

from service.cutoff import Cutoff, cutoff_after
from service.errors import DeadlineExceeded, ShuttingDown


async def run_for(cutoff: Cutoff, deadline_s: float, work_s: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with cutoff.deadline(deadline_s):
        await asyncio.sleep(work_s)
    return loop.time() - started


def test_own_deadline_is_a_504() -> None:
    async def go() -> None:
        cutoff = Cutoff()
        cutoff.bind(asyncio.get_running_loop())
        assert await run_for(cutoff, 1.0, 0.01) < 0.5
        with pytest.raises(DeadlineExceeded, match=r"longer than 0\.05 s"):
            await run_for(cutoff, 0.05, 5)
    asyncio.run(go())


def test_drain_cuts_running_and_later_requests_with_a_503() -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        cutoff = Cutoff()
        cutoff.bind(loop)
        running = asyncio.create_task(run_for(cutoff, 60, 30))
        await asyncio.sleep(0.01)
        started = loop.time()
        cutoff.begin(0.1)
        with pytest.raises(ShuttingDown) as err:
            await running
        assert 0.05 < loop.time() - started < 1.0
        assert err.value.status == 503
        assert err.value.headers["Retry-After"] == "1"
        with pytest.raises(ShuttingDown):  # a request that starts after the cut-off
            await run_for(cutoff, 60, 30)
        later = Cutoff()
        later.bind(loop)
        task = asyncio.create_task(run_for(later, 0.05, 30))
        await asyncio.sleep(0)
        later.begin(10)
        with pytest.raises(DeadlineExceeded):  # its own earlier deadline still rules
            await task
    asyncio.run(go())


def test_cutoff_lands_inside_the_listeners_timeout() -> None:
    assert cutoff_after(20) == 19
    assert cutoff_after(2) == 1.5
    assert cutoff_after(0) == 0
