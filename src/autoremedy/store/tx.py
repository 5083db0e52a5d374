"""One way for the shared store logic to talk to any backend: named queries with keyword parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Row = Mapping[str, Any]


class Tx(Protocol):
    """A transaction (or a read-only session) on one backend. Queries are named, from the .sql files."""

    async def rows(self, query: str, **params: Any) -> list[Row]: ...

    async def row(self, query: str, **params: Any) -> Row | None: ...

    async def run(self, query: str, **params: Any) -> int:
        """Execute; the number of rows affected."""

    async def run_many(self, query: str, params: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set, in one round trip where the backend can (bulk inserts)."""
