"""The global circuit breaker's row: read (locked, when deciding: it serialises decisions across replicas) and
written in the caller's transaction."""

from __future__ import annotations

from autoremedy.decide.guardrails import BreakerState
from autoremedy.store.rows import time_of
from autoremedy.store.tx import Tx


async def read_breaker(tx: Tx, *, lock: bool = False) -> BreakerState:
    row = await tx.row("lock_breaker" if lock else "read_breaker")
    if row is None:
        return BreakerState()
    return BreakerState(
        open=bool(row["open"]),
        opened_at=time_of(row["opened_at"]),
        last_attempt_at=time_of(row["last_attempt_at"]),
        closed_at=time_of(row["closed_at"]),
    )


async def write_breaker(tx: Tx, state: BreakerState) -> None:
    await tx.run(
        "write_breaker",
        open=int(state.open),
        opened_at=state.opened_at,
        last_attempt_at=state.last_attempt_at,
        closed_at=state.closed_at,
    )
