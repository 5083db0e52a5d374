"""Audit entries, written in the caller's transaction with what they tell about."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from autoremedy.store.base import AuditEntry
from autoremedy.store.tx import Tx


async def insert_audit(tx: Tx, entries: Sequence[AuditEntry], now: datetime) -> None:
    for entry in entries:
        await tx.run(
            "insert_audit",
            at=now,
            kind=entry.kind,
            run_id=entry.run_id,
            fingerprint=entry.fingerprint,
            actor=entry.actor,
            message=entry.message,
            data=json.dumps(entry.data),
        )
