"""Where a PostgreSQL run's commits come from: every statement logged by the server, grouped into transactions.

`pg_stat_database.xact_commit` counts every committed transaction, and a statement sent outside BEGIN ... COMMIT is
one (asyncpg's autocommit: a read, the pool's reset query when a connection goes back). With `log_statement=all`
and a prefix naming the database and session, the server's log says which transactions they were: this module
turns on the logging, reads the log written meanwhile, and counts each transaction's shape (the named queries it
ran, from src/autoremedy/store/sql/) for `bench/run.py --pg-attribution`. The logging slows the server down: the
latency measured in such a run is not a number to report.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from pathlib import Path

from tests.support.postgres import PostgresServer

from autoremedy.store.queries import load_queries, positional

PREFIX = "@@%d|%c|"
_RECORD = re.compile(r"^@@(?P<db>[^|]*)\|(?P<session>[^|]*)\|\s*(?P<level>[A-Z]+):\s+(?P<text>.*)$")
_STATEMENT = re.compile(r"^(?:statement|execute [^:]+):\s*(?P<sql>.*)$", re.S)


async def enable(pg: PostgresServer) -> None:
    await pg.fetchval("ALTER SYSTEM SET log_statement = 'all'")
    await pg.fetchval(f"ALTER SYSTEM SET log_line_prefix = '{PREFIX}'")
    await pg.fetchval("SELECT pg_reload_conf()")
    await asyncio.sleep(0.5)


async def disable(pg: PostgresServer) -> None:
    await pg.fetchval("ALTER SYSTEM RESET log_statement")
    await pg.fetchval("ALTER SYSTEM RESET log_line_prefix")
    await pg.fetchval("SELECT pg_reload_conf()")


def log_path(pg: PostgresServer) -> Path:
    return pg.root / f"{pg.name}.log"


def transactions(log: Path, *, dbname: str, offset: int) -> Counter[str]:
    """Each committed (or autocommitted) transaction of `dbname` logged after `offset`, by its shape."""
    names = _query_names()
    open_: dict[str, list[str]] = {}
    shapes: Counter[str] = Counter()
    for db, session, sql in _statements(log, offset):
        if db != dbname:
            continue
        word = sql.strip().rstrip(";").upper()
        if word.startswith("BEGIN"):
            open_[session] = []
        elif word in ("COMMIT", "END"):
            shapes[_shape(open_.pop(session, []))] += 1
        elif word == "ROLLBACK":
            open_.pop(session, None)
        elif session in open_:
            open_[session].append(_name(sql, names))
        else:
            shapes["(autocommit) " + _name(sql, names)] += 1
    return shapes


def _statements(log: Path, offset: int) -> list[tuple[str, str, str]]:
    """(database, session, sql) of each logged statement, continuation lines joined."""
    records: list[tuple[str, str, str, str]] = []
    with log.open("r", errors="replace") as file:
        file.seek(offset)
        for line in file:
            match = _RECORD.match(line.rstrip("\n"))
            if match is not None:
                records.append((match["db"], match["session"], match["level"], match["text"]))
            elif records and line.startswith("\t"):
                db, session, level, text = records[-1]
                records[-1] = (db, session, level, text + "\n" + line.rstrip("\n"))
    found = []
    for db, session, level, text in records:
        statement = _STATEMENT.match(text) if level == "LOG" else None
        if statement is not None:
            found.append((db, session, statement["sql"]))
    return found


def _query_names() -> dict[str, str]:
    return {_normal(positional(sql)[0]): name for name, sql in load_queries("postgres").items()}


def _normal(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";")


def _name(sql: str, names: dict[str, str]) -> str:
    normal = _normal(sql)
    if normal in names:
        return names[normal]
    if "pg_advisory_unlock_all" in normal:
        return "pool reset (asyncpg: advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL)"
    return normal[:60]


def _shape(statements: list[str]) -> str:
    if not statements:
        return "BEGIN; COMMIT (empty)"
    runs = [(name, len(list(group))) for name, group in itertools.groupby(statements)]
    return " + ".join(name if count == 1 else f"{name} x{count}" for name, count in runs)


def table(shapes: Counter[str], alerts: int) -> list[dict[str, object]]:
    """Rows of shape, count and count per alert, most frequent first."""
    return [
        {"transaction": shape, "count": count, "per_alert": round(count / alerts, 2)}
        for shape, count in shapes.most_common()
    ]
