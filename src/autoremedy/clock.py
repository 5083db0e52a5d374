"""The system clock: the only place the daemon reads the wall clock, the monotonic clock, or sleeps for time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from autoremedy.models.clock import Clock


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()  # the event loop's own time base: deadlines compare with loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
