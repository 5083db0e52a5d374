"""The SQLite writer's lock, with a lane for the run stage: its transactions go before queued ingest and decision
transactions.

Under a storm the writer is a queue of group commits and decision batches; a run's claim and step writes waiting
their turn behind them was most of the time from an alert's acknowledgement to its action. The run stage has at
most `engine.concurrency` writes in flight, each short, so putting them first cannot starve ingest or deciding.
First come, first served within each lane.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteLock:
    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held:  # free means nobody waits: a release hands the lock straight to the next waiter
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane = self._urgent if urgent else self._normal
        lane.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed the lock just as it was cancelled: pass it on
                self._release()
            else:
                lane.remove(waiter)
            raise

    def _release(self) -> None:
        for lane in (self._urgent, self._normal):
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the lock passes to it, still held
                    return
        self._held = False
