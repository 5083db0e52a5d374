"""The SQLite writer's lock: the run stage's lane goes first, each lane in order, and a cancelled waiter neither
keeps the lock nor loses it for the others."""

from __future__ import annotations

import asyncio

from autoremedy.store.writelock import WriteLock


async def _take(lock: WriteLock, name: str, order: list[str], *, urgent: bool, release: asyncio.Event) -> None:
    async with lock.hold(urgent=urgent):
        order.append(name)
        await release.wait()


async def test_urgent_waiters_go_before_normal_ones_and_each_lane_in_order() -> None:
    lock, order, go = WriteLock(), [], asyncio.Event()
    go.set()
    first = asyncio.Event()
    holder = asyncio.create_task(_take(lock, "holder", order, urgent=False, release=first))
    await asyncio.sleep(0)
    waiters = [
        asyncio.create_task(_take(lock, name, order, urgent=urgent, release=go))
        for name, urgent in (("ingest-1", False), ("run-1", True), ("ingest-2", False), ("run-2", True))
    ]
    await asyncio.sleep(0)
    assert order == ["holder"]
    first.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["holder", "run-1", "run-2", "ingest-1", "ingest-2"]


async def test_a_cancelled_waiter_does_not_block_the_lock() -> None:
    lock, order, go, held = WriteLock(), [], asyncio.Event(), asyncio.Event()
    go.set()
    holder = asyncio.create_task(_take(lock, "holder", order, urgent=False, release=held))
    await asyncio.sleep(0)
    gone = asyncio.create_task(_take(lock, "gone", order, urgent=True, release=go))
    after = asyncio.create_task(_take(lock, "after", order, urgent=False, release=go))
    await asyncio.sleep(0)
    gone.cancel()
    held.set()
    await asyncio.gather(holder, after)
    assert gone.cancelled()
    assert order == ["holder", "after"]
    async with lock.hold():  # free again
        pass


async def test_a_waiter_cancelled_as_the_lock_is_handed_to_it_passes_it_on() -> None:
    lock, order, go = WriteLock(), [], asyncio.Event()
    go.set()
    async with lock.hold():
        handed = asyncio.create_task(_take(lock, "handed", order, urgent=True, release=go))
        after = asyncio.create_task(_take(lock, "after", order, urgent=False, release=go))
        await asyncio.sleep(0)
    handed.cancel()  # the release above handed it the lock; it has not run since
    await asyncio.gather(after)
    assert handed.cancelled()
    assert order == ["after"]
