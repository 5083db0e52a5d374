"""Group commit: many concurrent webhook requests share one transaction.

Each handler queues its events and awaits a future; one writer task takes everything that has gathered, commits it in
one transaction, and resolves the futures. While a commit is in flight the next batch gathers, so there is no timer
and no added latency when load is light. Acknowledgement still follows the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from autoremedy.models.events import NewEvent
from autoremedy.store.base import InsertOutcome

WriteBatch = Callable[[Sequence[NewEvent]], Awaitable[list[InsertOutcome]]]
_Pending = tuple[Sequence[NewEvent], asyncio.Future[list[InsertOutcome]]]


class GroupCommitter:
    def __init__(self, write: WriteBatch, *, max_events: int = 2000) -> None:
        self._write = write
        self._max_events = max_events
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.on_commit: Callable[[int], None] = lambda stored: None
        """Called after each commit with how many new (not duplicate) events it stored."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def submit(self, events: Sequence[NewEvent]) -> list[InsertOutcome]:
        future: asyncio.Future[list[InsertOutcome]] = asyncio.get_running_loop().create_future()
        await self._queue.put((events, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0][0])
            while size < self._max_events and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                size += len(batch[-1][0])
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        events = [event for pending_events, _ in batch for event in pending_events]
        try:
            outcomes = await self._write(events)
        except Exception as exc:  # every waiter learns the commit failed and answers 503
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        offset = 0
        for pending_events, future in batch:
            if not future.done():
                future.set_result(outcomes[offset : offset + len(pending_events)])
            offset += len(pending_events)
        self.on_commit(sum(not outcome.duplicate for outcome in outcomes))
