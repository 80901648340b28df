"""service.session_steps: the lock lease kept alive while a clip runs, and fenced commits."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.errors import ClipInFlight
from service.schemas import CommitOutcome
from service.session_steps import SessionSteps
from service.store import LocalStore


async def locked_steps() -> tuple[LocalStore, SessionSteps]:
    """A fresh in-process store with session "s", and a clip holding it by a 0.3 s lease."""
    local = LocalStore("v", ttl_s=60, max_seconds=100, max_sessions=10)
    await local.create_session("s", ttl_s=60, lookahead_s=0)
    steps = SessionSteps(local, "s", lock_ttl_s=0.3)
    await steps.record()
    await steps.lock()
    return local, steps


def test_lease_is_kept_while_the_clip_runs_and_freed_after() -> None:
    async def scenario() -> None:
        local, steps = await locked_steps()
        await asyncio.sleep(0.7)  # more than two leases: renewed meanwhile
        other = SessionSteps(local, "s", lock_ttl_s=0.3)
        with pytest.raises(ClipInFlight) as busy:
            await other.lock()
        assert busy.value.headers["Retry-After"] == "1"
        stored = await steps.commit(0, {0: np.ones((1, 4), np.float32)}, b"answer", None)
        assert stored is CommitOutcome.stored
        await steps.release()
        await other.lock()  # free at once after the release
        await other.release()

    asyncio.run(scenario())


def test_a_commit_after_the_lease_passed_on_is_not_stored() -> None:
    async def scenario() -> None:
        local, steps = await locked_steps()
        assert steps._keeper is not None
        steps._keeper.cancel()  # the renewals stop (a replica stalled)
        await asyncio.sleep(0.4)
        assert await local.acquire("s", "someone-else", 5)
        late = await steps.commit(0, {0: np.ones((1, 4), np.float32)}, b"late", None)
        assert late is CommitOutcome.not_stored
        assert steps.degraded  # the answer says memory was not kept
        assert await local.get_clip("s", 0) is None
        await steps.release()

    asyncio.run(scenario())
