"""Alert-to-first-action latency at a steady rate: an open-loop webhook generator and a receiving endpoint.

The generator sends one new alert per webhook on a fixed schedule (it never waits for an answer before the next
send) and notes the send time per fingerprint; the playbook's first step POSTs the fingerprint to the receiver,
which notes the arrival. Both run on this process's event loop and one monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from bench.harness import CpuMeter, Server, Template, fingerprint, next_prefix, percentile


@dataclass
class Receiver:
    arrivals: dict[str, float] = field(default_factory=dict)
    arrivals_wall: dict[str, float] = field(default_factory=dict)
    repeats: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/action", self._action)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/action"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _action(self, request: web.Request) -> web.Response:
        now, wall = time.monotonic(), time.time()
        fp = (await request.json())["fingerprint"]
        if fp in self.arrivals:
            self.repeats += 1
        else:
            self.arrivals[fp] = now
            self.arrivals_wall[fp] = wall
            self.arrived.set()
        return web.json_response({"ok": True})


@dataclass
class Sent:
    at: dict[str, float] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)
    ack_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    max_lag_ms: float = 0.0


async def _send(session: aiohttp.ClientSession, server: Server, template: Template, fp: str, sent: Sent) -> None:
    body = template.body([fp])
    start = time.monotonic()
    sent.at[fp], sent.wall[fp] = start, time.time()
    try:
        async with session.post(f"{server.url}/api/v1/alerts", data=body, headers=server.headers) as response:
            await response.read()
            if response.status != 200:
                sent.failures.append(f"HTTP {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        sent.failures.append(f"{type(exc).__name__}: {exc}")
    sent.ack_ms.append((time.monotonic() - start) * 1000)


async def open_loop(server: Server, template: Template, *, rate: float, count: int) -> Sent:
    """Send `count` 1-alert webhooks at `rate` per second on a fixed schedule; wait for every answer."""
    sent = Sent()
    prefix = next_prefix()
    tasks: set[asyncio.Task[None]] = set()
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        begin = time.monotonic() + 0.05
        for i in range(count):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                sent.max_lag_ms = max(sent.max_lag_ms, -delay * 1000)
            task = asyncio.create_task(_send(session, server, template, fingerprint(prefix, i), sent))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
    return sent


async def _wait_arrivals(receiver: Receiver, fingerprints: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(fp not in receiver.arrivals for fp in fingerprints):
        receiver.arrived.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.arrived.wait(), timeout=remaining)


async def measure_latency(
    server: Server, receiver: Receiver, template: Template, *, rate: float, seconds: float, warmup_s: float
) -> dict[str, Any]:
    """Warm up, then send `rate` alerts/s for `seconds`; latency = receiver arrival - send time, per alert."""
    warm = await open_loop(server, template, rate=rate, count=int(rate * warmup_s))
    await _wait_arrivals(receiver, list(warm.at), 15.0)
    meter = CpuMeter(server.pids)
    meter.start()
    count = int(rate * seconds)
    sent = await open_loop(server, template, rate=rate, count=count)
    await _wait_arrivals(receiver, list(sent.at), 30.0)
    cpu = meter.stop()
    latencies = sorted((receiver.arrivals[fp] - at) * 1000 for fp, at in sent.at.items() if fp in receiver.arrivals)
    acks = sorted(sent.ack_ms)
    measured = {fp: sent.wall[fp] for fp in sent.at}
    return {
        "sent_wall": measured,
        "rate_per_s": rate,
        "seconds": seconds,
        "sent": count,
        "acted_on": len(latencies),
        "missing": count - len(latencies),
        "repeated_actions": receiver.repeats,
        "webhook_failures": len(sent.failures),
        "failure_examples": sent.failures[:3],
        "generator_max_lag_ms": round(sent.max_lag_ms, 2),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "ack_p50_ms": round(percentile(acks, 50), 2),
        "ack_p99_ms": round(percentile(acks, 99), 2),
        "cpu": cpu,
    }


STAGES_SQL = """
SELECT e.fingerprint, e.received_at, e.claimed_at, r.created_at, r.started_at, s.started_at AS step_started
FROM events e JOIN runs r ON r.event_id = e.id JOIN run_steps s ON s.run_id = r.id AND s.idx = 0
"""


def stage_rows_sqlite(db: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute(STAGES_SQL).fetchall()
    finally:
        connection.close()


async def stage_rows_postgres(dsn: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await connection.fetch(STAGES_SQL)]
    finally:
        await connection.close()


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.timestamp()


STAGE_NAMES = (
    "webhook sent -> stored (group commit began)",
    "stored -> event claimed by the worker",
    "event claimed -> run claimed for execution (decide, record the decision, wait for the executor)",
    "run claimed -> first step started",
    "first step started -> request arrives at the receiver",
)


def stages(sent_wall: dict[str, float], arrivals_wall: dict[str, float], rows: list[tuple[Any, ...]]) -> list[Any]:
    """Where the time between a webhook and its first action goes, from the times the store records (wall clock,
    same machine). p50 / p99 / max in ms per stage, over the alerts measured."""
    spans: list[list[float]] = [[] for _ in STAGE_NAMES]
    for fp, *times in rows:
        if fp not in sent_wall or fp not in arrivals_wall:
            continue
        received, claimed, _created, started, step_started = (_epoch(t) for t in times)
        sequence = [sent_wall[fp], received, claimed, started, step_started, arrivals_wall[fp]]
        if any(point is None for point in sequence):
            continue
        for index in range(len(STAGE_NAMES)):
            spans[index].append((sequence[index + 1] - sequence[index]) * 1000)
    found = []
    for name, values in zip(STAGE_NAMES, spans, strict=True):
        values.sort()
        found.append(
            {
                "stage": name,
                "count": len(values),
                "p50_ms": round(percentile(values, 50), 2),
                "p99_ms": round(percentile(values, 99), 2),
                "max_ms": round(values[-1], 2) if values else None,
            }
        )
    return found
