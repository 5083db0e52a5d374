"""Reads several store modules share."""

from __future__ import annotations

from autoremedy.models.runs import Run
from autoremedy.store.rows import run_from_rows
from autoremedy.store.tx import Tx


async def load_run(tx: Tx, run_id: str) -> Run | None:
    row = await tx.row("get_run", id=run_id)
    if row is None:
        return None
    return run_from_rows(row, await tx.rows("list_steps", run_id=run_id))
