"""Group commit: many concurrent webhook requests share one transaction.

Each handler queues its events and awaits a future; one writer task takes everything that has gathered, commits it in
one transaction, and resolves the futures. While a commit is in flight the next batch gathers, so there is no timer
and no added latency when load is light. Acknowledgement still follows the commit.

A batch the store refuses for its data (StoreDataError: a NUL byte, an over-long key) is committed again one
webhook at a time, and a refused webhook one alert at a time, so only the culprit is refused (the handler answers
400 naming it); the valid webhooks that shared its batch are stored and acknowledged as if it had not been there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from autoremedy.background import AT_ONCE, BackgroundLoop
from autoremedy.models.events import NewEvent
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import InsertOutcome, RefusedEvents, StoreDataError

log = get_logger("autoremedy.groupcommit")

WriteBatch = Callable[[Sequence[NewEvent]], Awaitable[list[InsertOutcome]]]
_Pending = tuple[Sequence[NewEvent], asyncio.Future[list[InsertOutcome]]]


class GroupCommitter:
    def __init__(self, write: WriteBatch, *, max_events: int = 2000, metrics: Metrics | None = None) -> None:
        self._write = write
        self._max_events = max_events
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # No poll: a turn waits for the next webhook itself, and the one after it follows at once.
        errors = (metrics or Metrics()).loop_errors
        self._loop = BackgroundLoop("group-commit", self._turn, poll_interval=0, errors=errors)
        self.on_commit: Callable[[int], None] = lambda stored: None
        """Called after each commit with how many new (not duplicate) events it stored."""

    def start(self) -> None:
        self._loop.start()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._loop.task

    async def stop(self) -> None:
        await self._loop.stop(grace=0)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def submit(self, events: Sequence[NewEvent]) -> list[InsertOutcome]:
        future: asyncio.Future[list[InsertOutcome]] = asyncio.get_running_loop().create_future()
        await self._queue.put((events, future))
        return await future

    async def _turn(self) -> float:
        batch = [await self._queue.get()]
        size = len(batch[0][0])
        while size < self._max_events and not self._queue.empty():
            batch.append(self._queue.get_nowait())
            size += len(batch[-1][0])
        try:
            await self._commit(batch)
        except Exception as exc:  # a bug here must not leave webhooks waiting forever; the loop counts it
            _fail(batch, exc)
            raise
        return AT_ONCE

    async def _commit(self, batch: list[_Pending]) -> None:
        events = [event for pending_events, _ in batch for event in pending_events]
        try:
            outcomes = await self._write(events)
        except StoreDataError as exc:
            if len(batch) == 1 and len(events) == 1:
                _fail(batch, RefusedEvents({0: str(exc)}, stored=0))
            else:
                await self._isolate(batch)
            return
        except Exception as exc:  # every waiter learns the commit failed and answers 503
            _fail(batch, exc)
            return
        offset = 0
        for pending_events, future in batch:
            if not future.done():
                future.set_result(outcomes[offset : offset + len(pending_events)])
            offset += len(pending_events)
        self.on_commit(sum(not outcome.duplicate for outcome in outcomes))

    async def _isolate(self, batch: list[_Pending]) -> None:
        """The batch holds refused data: each webhook alone, and a refused webhook's alerts one by one."""
        await log.awarning("a batch was refused for its data; committing each webhook alone", webhooks=len(batch))
        for pending_events, future in batch:
            try:
                outcomes = await self._write(pending_events)
            except StoreDataError:
                _settle(future, await self._one_by_one(pending_events))
                continue
            except Exception as exc:
                _settle(future, exc)
                continue
            _settle(future, outcomes)
            self.on_commit(sum(not outcome.duplicate for outcome in outcomes))

    async def _one_by_one(self, events: Sequence[NewEvent]) -> Exception:
        refused: dict[int, str] = {}
        stored = 0
        for index, event in enumerate(events):
            try:
                outcome = (await self._write([event]))[0]
            except StoreDataError as exc:
                refused[index] = str(exc)
                continue
            except Exception as exc:  # the store went away meanwhile: the whole webhook is retried (503)
                return exc
            stored += not outcome.duplicate
        self.on_commit(stored)
        return RefusedEvents(refused, stored=stored)


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for _, future in batch:
        _settle(future, error)


def _settle(future: asyncio.Future[list[InsertOutcome]], result: list[InsertOutcome] | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
