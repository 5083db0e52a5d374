"""One long-lived loop of the daemon: turns, each followed by a pause that a wake-up cuts short; supervised.

Every background task (decider, worker, heartbeat, escalation sender, group commit, rules watcher) is one of these.
A turn that raises something unexpected is counted in autoremedy_loop_errors_total{loop}, logged, and followed by a
backoff; the loop goes on. A loop that ends anyway (a cancel from outside, a BaseException) is what the daemon's
supervisor watches `task` for: readiness names it and the process exits to be restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.models.clock import Clock
from autoremedy.observability import LoopErrors, get_logger

log = get_logger("autoremedy.loop")
AT_ONCE = 0.0
"""A turn's answer: take the next turn without pausing (more work is waiting)."""

Turn = Callable[[], Awaitable[float | None]]
"""One turn of work; it returns the pause before the next turn in seconds, or None for the poll interval."""


class BackgroundLoop:
    def __init__(
        self, name: str, turn: Turn, *, poll_interval: float, errors: Counter, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.name = name
        self._turn = turn
        self._poll = poll_interval
        self._clock = clock
        self._errors = LoopErrors(errors, name, clock=clock)
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The running task, for supervision: one that ends before stop() is a fault."""
        return self._task

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=self.name)
        return self._task

    def wake(self) -> None:
        """Take the next turn now rather than after the pause."""
        self._wakeup.set()

    async def stop(self, *, grace: float | None = None) -> None:
        """No more turns. A turn under way may finish within `grace` seconds (None: however long it takes; 0: it is
        cancelled at once). A task that died earlier was reported then and is not raised again here."""
        self._stop.set()
        self._wakeup.set()
        task = self._task
        if task is None or task.done():
            return
        if grace is None:
            await asyncio.wait([task])
            return
        if grace > 0:
            await asyncio.wait([task], timeout=grace)
        task.cancel()
        await asyncio.wait([task])

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds` on the loop's clock, cut short by a wake-up or stop; False once stopping."""
        if self._stop.is_set():
            return False
        if seconds <= 0:
            await asyncio.sleep(0)
            return not self._stop.is_set()
        waiter = asyncio.ensure_future(self._wakeup.wait())
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait([waiter, timer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return not self._stop.is_set()

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                pause = await self._turn()
                self._errors.ok()
            except Exception:  # a bug in one turn must not stop the loop: counted, logged, backed off
                await self._errors.failed(log)
                continue
            await self.pause(self._poll if pause is None else pause)
