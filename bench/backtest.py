"""How long `autoremedy backtest` takes over 100,000 stored alert events (target: under 10 s).

The events go in through the store's own insert path (`insert_events`, as the webhook's group commit writes them),
spread over a week and shaped for the example rules (rules/): crash loops, stuck pods, latency, abusive clients,
failovers, and alerts no rule matches. Then the command is timed end to end, as a user runs it, with the example
rules and playbooks: `autoremedy backtest --config CONFIG --since 8d --output json`.

    .venv/bin/python bench/backtest.py                 # SQLite
    .venv/bin/python bench/backtest.py --postgres      # also PostgreSQL (starts a throwaway server)
    .venv/bin/python bench/backtest.py --events 20000  # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.postgres import start_postgres  # noqa: E402

from autoremedy.models.events import NewEvent, canonical_time  # noqa: E402
from autoremedy.store.postgres import PostgresStore  # noqa: E402
from autoremedy.store.sqlite import SQLiteStore  # noqa: E402
from autoremedy.store.sqlstore import SqlStore  # noqa: E402

BATCH = 500
START = datetime.now(UTC) - timedelta(days=7)
SHAPES = [
    {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "cart-7d9f8b6c5d-{n}"},
    {"alertname": "KubePodNotReady", "namespace": "shop", "pod": "search-{n}"},
    {
        "alertname": "HighRequestLatency",
        "severity": "page",
        "namespace": "shop",
        "service": "svc{n}",
        "scalable": "true",
    },
    {"alertname": "AbusiveClientIP", "client_ip": "203.0.113.{n}"},
    {"alertname": "PostgresPrimaryDown", "database": "db{n}", "namespace": "db"},
    {"alertname": "DemoAppDown", "severity": "critical", "instance": "demo-{n}"},
    {"alertname": "NodeDiskFilling", "instance": "node-{n}"},  # no rule
    {"alertname": "Watchdog", "instance": "prom-{n}"},  # no rule
]


def events(count: int) -> list[tuple[datetime, NewEvent]]:
    step = timedelta(days=7) / count
    found = []
    for index in range(count):
        shape = SHAPES[index % len(SHAPES)]
        labels = {key: value.format(n=index % 97) for key, value in shape.items()}
        at = START + index * step
        status = "resolved" if index % 5 == 4 else "firing"
        found.append(
            (
                at,
                NewEvent(
                    fingerprint=f"{labels['alertname']}-{index % 97}",
                    status=status,
                    starts_at=canonical_time(at),
                    ends_at=canonical_time(at) if status == "resolved" else None,
                    labels=labels,
                    # A summary per alert, as templates use it; a description with the value, unique per event.
                    annotations={
                        "summary": f"{labels['alertname']} on {index % 97}",
                        "description": f"value {index * 7 % 1000}",
                    },
                    generator_url="http://prometheus:9090/graph",
                    receiver="autoremedy",
                    external_url="http://alertmanager:9093",
                    group_key="{}:{}",
                ),
            )
        )
    return found


async def fill(store: SqlStore, count: int) -> float:
    await store.open()
    began = time.perf_counter()
    try:
        batch: list[NewEvent] = []
        for at, event in events(count):
            batch.append(event)
            if len(batch) == BATCH:
                await store.insert_events(batch, now=at)
                batch = []
        if batch:
            await store.insert_events(batch, now=START + timedelta(days=7))
    finally:
        await store.close()
    return time.perf_counter() - began


def timed_backtest(root: Path, store_url: str) -> tuple[float, float, dict[str, object], str]:
    config = root / "autoremedy.yaml"
    config.write_text(
        json.dumps(
            {"store": {"url": store_url}, "rules_dir": str(ROOT / "rules"), "playbooks_dir": str(ROOT / "playbooks")}
        )
    )
    command = [
        str(Path(sys.executable).parent / "autoremedy"),
        "backtest",
        "--config",
        str(config),
        "--since",
        "8d",
        "--output",
        "json",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads(done.stdout)
    return seconds, cpu, report, " ".join(command)


def show(
    name: str, count: int, *, filled: float, times: tuple[float, float], report: dict[str, Any], command: str
) -> None:
    summary, (seconds, cpu) = report["summary"], times
    print(
        f"{name}: {count} events stored in {filled:.1f} s; backtest replayed {report['events']} in {seconds:.2f} s "
        f"wall, {cpu:.2f} s CPU (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"  changes: {summary}; command: {command}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autoremedy-bench-backtest-") as folder:
        root = Path(folder)
        filled = await fill(SQLiteStore(root / "store.db"), args.events)
        seconds, cpu, report, command = timed_backtest(root, f"sqlite:///{root / 'store.db'}")
        show("sqlite", args.events, filled=filled, times=(seconds, cpu), report=report, command=command)
        if args.postgres:
            server = await start_postgres(root / "postgres")
            try:
                dsn = await server.create_database("bench")
                filled = await fill(PostgresStore(dsn), args.events)
                seconds, cpu, report, command = timed_backtest(root, dsn)
                show("postgresql", args.events, filled=filled, times=(seconds, cpu), report=report, command=command)
            finally:
                server.stop("immediate")


if __name__ == "__main__":
    asyncio.run(main())
