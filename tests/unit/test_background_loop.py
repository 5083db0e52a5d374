"""BackgroundLoop on a manual clock: poll interval, wake-ups, a failing turn counted and backed off while the loop
goes on, and stop with a grace."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter
from tests.support.clock import ManualClock, settle

from autoremedy.background import AT_ONCE, BackgroundLoop


def _errors() -> tuple[Counter, CollectorRegistry]:
    registry = CollectorRegistry()
    return Counter("autoremedy_loop_errors_total", "errors", ["loop"], registry=registry), registry


async def test_turns_follow_the_poll_interval_and_a_wake_up_cuts_the_pause_short() -> None:
    clock, turns = ManualClock(), []
    counter, _ = _errors()

    async def turn() -> None:
        turns.append(clock.monotonic())

    loop = BackgroundLoop("test", turn, poll_interval=10, errors=counter, clock=clock)
    loop.start()
    await settle()
    assert turns == [0.0] and clock.pending() == [10]
    await clock.advance(10)
    assert turns == [0.0, 10.0]
    await clock.advance(3)
    loop.wake()
    await settle()
    assert turns == [0.0, 10.0, 13.0]
    await loop.stop()
    assert loop.task is not None and loop.task.done() and not loop.task.cancelled()


async def test_a_failing_turn_is_counted_backed_off_on_the_clock_and_the_loop_goes_on() -> None:
    clock, calls = ManualClock(), []
    counter, registry = _errors()

    async def turn() -> float:
        calls.append(clock.monotonic())
        if len(calls) <= 3:
            raise RuntimeError("a bug")
        return 60.0

    loop = BackgroundLoop("flaky", turn, poll_interval=10, errors=counter, clock=clock)
    loop.start()
    for pause in (0.5, 1.0, 2.0):  # the backoff doubles while the errors repeat (logging runs in a thread)
        await clock.sleeping(pause)
        assert clock.pending() == [pause]
        await clock.advance(pause)
    await clock.sleeping(60.0)
    assert calls == [0.0, 0.5, 1.5, 3.5]
    assert clock.pending() == [60.0]  # a clean turn: its own pause, the backoff reset
    assert registry.get_sample_value("autoremedy_loop_errors_total", {"loop": "flaky"}) == 3.0
    assert loop.task is not None and not loop.task.done()
    await loop.stop(grace=0)


async def test_stop_lets_a_turn_finish_within_the_grace_and_cancels_it_after() -> None:
    clock = ManualClock()
    counter, _ = _errors()
    release, finished = asyncio.Event(), []

    async def turn() -> float:
        await release.wait()
        finished.append(True)
        return AT_ONCE

    patient = BackgroundLoop("patient", turn, poll_interval=1, errors=counter, clock=clock)
    patient.start()
    await settle()
    stopping = asyncio.create_task(patient.stop())
    await settle()
    assert not stopping.done()  # no grace given: the turn in hand is awaited
    release.set()
    await stopping
    assert finished == [True]

    release.clear()
    impatient = BackgroundLoop("impatient", turn, poll_interval=1, errors=counter, clock=clock)
    task = impatient.start()
    await settle()
    await impatient.stop(grace=0)
    assert task.cancelled() and finished == [True]
