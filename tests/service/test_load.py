"""service.load: Retry-After from the measured drain rate."""

from __future__ import annotations

from service.load import MAX_RETRY_AFTER_S, Load


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def finish(load: Load, clock: Clock, count: int, every_s: float) -> None:
    for _ in range(count):
        with load.answering():
            clock.now += every_s


def test_nothing_measured_is_one_second() -> None:
    load = Load(clock=Clock())
    assert load.drain_rate() is None
    assert load.retry_after_s() == 1


def test_slow_answers_give_a_long_wait() -> None:
    clock = Clock()
    load = Load(window_s=60, clock=clock)
    finish(load, clock, count=5, every_s=11.0)  # one answer per 11 s
    load.active = 3  # three in progress, the asking client is the fourth
    assert abs(load.drain_rate() - 5 / 44) < 1e-9  # 5 finished over the 44 s since the first
    assert load.retry_after_s() == 36  # ceil(4 / (5/44))


def test_fast_answers_give_a_short_wait_and_the_wait_is_capped() -> None:
    clock = Clock()
    load = Load(window_s=30, clock=clock)
    finish(load, clock, count=20, every_s=0.05)
    load.active = 8
    assert load.retry_after_s() == 1
    finish(load, clock, count=3, every_s=25.0)  # old completions fall out of the window
    load.active = 1000
    assert load.retry_after_s() == MAX_RETRY_AFTER_S


def test_active_counts_answers_in_progress_and_errors_still_finish() -> None:
    clock = Clock()
    load = Load(clock=clock)
    with load.answering():
        assert load.active == 1
    try:
        with load.answering():
            raise ValueError
    except ValueError:
        pass
    assert load.active == 0
    clock.now += 1
    assert load.drain_rate() is not None
