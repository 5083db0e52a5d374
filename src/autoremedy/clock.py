"""The system clock: the only place the daemon reads the wall clock, the monotonic clock, or sleeps for time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

from autoremedy.models.clock import Clock

T = TypeVar("T")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()  # the event loop's own time base: deadlines compare with loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


async def within(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """What `work` returns, or TimeoutError once `seconds` have passed on `clock` (the work is then cancelled).

    asyncio.timeout measures the event loop's time; this measures the clock the caller was given, so a manual clock
    in a test times a step out when the test moves time on."""
    task = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait([task, timer], return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
    if task.cancelled():
        raise TimeoutError
    return task.result()
