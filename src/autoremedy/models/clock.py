"""The one clock the daemon reads time from: wall time for records, a monotonic reading for intervals, and sleep.

A protocol only: the system clock is at the edge (autoremedy.clock), and tests pass a manual clock whose time moves
when the test says so (tests/support/clock.py), so time-dependent behaviour is tested without waiting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, aware, in UTC: what records and decisions carry."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go back: what intervals and rate limits are measured with."""

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
