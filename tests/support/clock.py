"""A clock whose time moves only when the test advances it: sleepers wake in order of their deadlines."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self, start: datetime = START) -> None:
        self._start = start
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, float, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.slept: list[float] = []
        """Every sleep asked for, in order: what backoff and poll intervals the code under test chose."""

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._order), seconds, future))
        await future

    def pending(self) -> list[float]:
        """The lengths of the sleeps pending now, as they were asked for."""
        return [asked for _, _, asked, future in self._sleepers if not future.done()]

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones excluded)."""
        return len(self.pending())

    async def sleeping(self, seconds: float | None = None, *, deadline: float = 10.0) -> None:
        """Wait (in real time, up to `deadline` seconds) until a sleep of `seconds` (None: any) is pending: the
        code under test has done what it could and waits for time to move. Store calls run in threads, so
        yielding to the event loop alone is not enough."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        while not any(seconds is None or asked == seconds for asked in self.pending()):
            if loop.time() > give_up:
                raise TimeoutError(f"no pending sleep of {seconds}s on the manual clock: {self.pending()}")
            await asyncio.sleep(0.005)

    async def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, waking each sleeper whose time came, in order, letting each run. A woken task
        that sleeps again only after a store call is not waited for: advance in steps, with `sleeping` between."""
        target = self._elapsed + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, _, future = heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, due)
            if not future.done():
                future.set_result(None)
                await settle()
        self._elapsed = target
        await settle()


async def settle(turns: int = 20) -> None:
    """Let every task that is ready run until they all wait again (on the clock, a lock or I/O)."""
    for _ in range(turns):
        await asyncio.sleep(0)
