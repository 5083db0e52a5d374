"""Issue 14's benchmarks: an alert storm end to end, and how fast a backlog of stored events is decided.

Storm: 10,000 new alerts in 50-alert webhooks from 8 concurrent senders (one connection each), every 50th alert
matching a rule whose playbook POSTs its fingerprint to a receiver in this process. Measured on one monotonic clock:
end-to-end alerts/s (first webhook sent -> last action received), the acknowledgement of each acting alert's
webhook -> its action (p50, p99), and when the last event was decided.

Backlog: events written straight into a fresh store (with the library, before the daemon starts), then the daemon
started and the queue watched until empty: the decide rate with no ingest; and the same backlog while 50-alert
webhooks saturate the daemon: the decide rate under ingest (from /metrics' autoremedy_events_decided_total).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from autoremedy.models.events import NewEvent
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from autoremedy.store.sqlstore import SqlStore
from bench.harness import FP_MARK, CpuMeter, Server, Template, fingerprint, next_prefix, percentile, queue_depth
from bench.latency import Receiver

ACTING_LABEL = "tier"


def storm_rule_and_playbook(receiver_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    rule = {
        "name": "bench-storm",
        "matchers": ["alertname = DemoAppDown", f"{ACTING_LABEL} = acting"],
        "playbook": "bench-http",
    }
    playbook = {
        "name": "bench-http",
        "target": "alert/{{ alert.fingerprint }}",
        "steps": [
            {
                "name": "notify",
                "action": "http.request",
                "with": {"url": receiver_url, "json": {"fingerprint": "{{ alert.fingerprint }}"}},
            }
        ],
    }
    return rule, playbook


@dataclass
class Bodies:
    bodies: list[bytes]
    acting: list[list[str]]
    """Per webhook: the fingerprints in it that a rule acts on."""


def storm_bodies(template: Template, *, alerts: int, per_request: int, acting_every: int) -> Bodies:
    base = json.loads(template.alert)
    kinds = {}
    for kind in ("acting", "noise"):
        alert = copy.deepcopy(base)
        alert["labels"][ACTING_LABEL] = kind
        kinds[kind] = json.dumps(alert).split(FP_MARK)
    prefix = next_prefix()
    bodies, acting = [], []
    for start in range(0, alerts, per_request):
        parts, mine = [], []
        for n in range(start, min(start + per_request, alerts)):
            fp = fingerprint(prefix, n)
            kind = "acting" if n % acting_every == acting_every - 1 else "noise"
            parts.append(fp.join(kinds[kind]))
            if kind == "acting":
                mine.append(fp)
        bodies.append((template.head + ",".join(parts) + template.tail).encode())
        acting.append(mine)
    return Bodies(bodies, acting)


@dataclass
class StormProgress:
    acked: dict[str, float] = field(default_factory=dict)
    first_send: float = 0.0
    last_ack: float = 0.0
    retries_503: int = 0


async def _storm_sender(
    session: aiohttp.ClientSession, server: Server, bodies: Bodies, work: Any, progress: StormProgress
) -> None:
    for index in work:
        while True:
            async with session.post(
                f"{server.url}/api/v1/alerts", data=bodies.bodies[index], headers=server.headers
            ) as response:
                await response.read()
                if response.status == 200:
                    break
                if response.status != 503:
                    raise RuntimeError(f"webhook answered {response.status}")
            progress.retries_503 += 1
            await asyncio.sleep(0.1)
        now = time.monotonic()
        progress.last_ack = max(progress.last_ack, now)
        for fp in bodies.acting[index]:
            progress.acked[fp] = now


async def storm(
    server: Server,
    receiver: Receiver,
    template: Template,
    *,
    alerts: int = 10_000,
    per_request: int = 50,
    senders: int = 8,
    acting_every: int = 50,
    max_seconds: float = 120.0,
    counters: Callable[[], Awaitable[dict[str, float]]] | None = None,
) -> dict[str, Any]:
    bodies = storm_bodies(template, alerts=alerts, per_request=per_request, acting_every=acting_every)
    expected = sum(len(a) for a in bodies.acting)
    progress = StormProgress()
    work = iter(range(len(bodies.bodies)))
    meter = CpuMeter(server.pids)
    before = await counters() if counters is not None else None
    connector = aiohttp.TCPConnector(limit=senders)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Content-Type": "application/json"}, timeout=timeout
    ) as session:
        meter.start()
        progress.first_send = time.monotonic()
        await asyncio.gather(*(_storm_sender(session, server, bodies, work, progress) for _ in range(senders)))
        deadline = progress.first_send + max_seconds
        while len(receiver.arrivals) < expected and time.monotonic() < deadline:
            receiver.arrived.clear()
            try:
                await asyncio.wait_for(receiver.arrived.wait(), timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
        last_action = max(receiver.arrivals.values(), default=time.monotonic())
        drained_at = await _wait_drained(session, server, deadline)
        cpu = meter.stop()
    after = await counters() if counters is not None else None
    latencies = sorted(
        (receiver.arrivals[fp] - progress.acked[fp]) * 1000 for fp in progress.acked if fp in receiver.arrivals
    )
    result: dict[str, Any] = {
        "alerts": alerts,
        "per_request": per_request,
        "senders": senders,
        "acting": expected,
        "acted": len(receiver.arrivals),
        "repeats": receiver.repeats,
        "retries_503": progress.retries_503,
        "ack_all_s": round(progress.last_ack - progress.first_send, 2),
        "last_action_s": round(last_action - progress.first_send, 2),
        "end_to_end_alerts_per_s": round(alerts / max(1e-6, last_action - progress.first_send)),
        "all_decided_s": round(drained_at - progress.first_send, 2) if drained_at is not None else None,
        "ack_to_action_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "ack_to_action_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "ack_to_action_max_ms": round(latencies[-1], 1) if latencies else None,
        "cpu": cpu,
    }
    if before is not None and after is not None:
        result["postgres"] = {name: after[name] - before[name] for name in after}
        result["postgres"]["commits_per_alert"] = round(result["postgres"]["commits"] / alerts, 3)
    return result


async def _wait_drained(session: aiohttp.ClientSession, server: Server, deadline: float) -> float | None:
    while time.monotonic() < deadline:
        if await queue_depth(session, server) == 0:
            return time.monotonic()
        await asyncio.sleep(0.05)
    return None


# -- backlog ---------------------------------------------------------------------------------------------------


def _event(prefix: str, n: int) -> NewEvent:
    return NewEvent(
        fingerprint=fingerprint(prefix, n),
        status="firing",
        starts_at="2026-12-06T00:00:00.000000Z",
        ends_at=None,
        labels={"alertname": "DemoAppDown", "instance": f"{n}:9101", "namespace": "default", "severity": "critical"},
        annotations={"summary": "web deployment unhealthy"},
        generator_url="http://prometheus:9090/graph",
        receiver="autoremedy",
        external_url="http://alertmanager:9093",
        group_key='{}:{alertname="DemoAppDown"}',
    )


async def prefill(store_url: str, config_dir: Path, count: int, *, chunk: int = 2000) -> float:
    """Write `count` new events straight into the store the daemon will open; seconds it took."""
    store: SqlStore
    if store_url.startswith("sqlite:///"):
        store = SQLiteStore(config_dir / store_url.removeprefix("sqlite:///"))
    else:
        store = PostgresStore(store_url)
    started = time.monotonic()
    await store.open()
    try:
        prefix = next_prefix()
        for start in range(0, count, chunk):
            events = [_event(prefix, n) for n in range(start, min(start + chunk, count))]
            await store.insert_events(events, now=datetime.now(UTC))
    finally:
        await store.close()
    return time.monotonic() - started


async def decided_total(session: aiohttp.ClientSession, server: Server) -> float:
    async with session.get(f"{server.url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("autoremedy_events_decided_total{")
    )


async def backlog_alone(server: Server, *, events: int, max_seconds: float) -> dict[str, Any]:
    """The daemon was started on a prefilled store and is deciding already: the rate from the first reading of
    its decided counter until every event is decided."""
    meter = CpuMeter(server.pids)
    meter.start()
    async with aiohttp.ClientSession() as session:
        started, first = time.monotonic(), await decided_total(session, server)
        decided = first
        while time.monotonic() < started + max_seconds and decided < events:
            await asyncio.sleep(0.05)
            decided = await decided_total(session, server)
        seconds = time.monotonic() - started
    return {
        "events": events,
        "decided_before_first_reading": int(first),
        "decided": int(decided),
        "watched_s": round(seconds, 2),
        "decided_per_s": round((decided - first) / seconds),
        "cpu": meter.stop(),
    }


async def backlog_under_ingest(
    server: Server, template: Template, *, seconds: float, connections: int = 32, per_request: int = 50
) -> dict[str, Any]:
    """While 50-alert webhooks saturate the daemon for `seconds`: how many events it decided meanwhile."""
    prefix = next_prefix()
    counter = iter(range(10**9))
    acked = 0
    stop_at = 0.0

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal acked
        while time.monotonic() < stop_at:
            fps = [fingerprint(prefix, next(counter)) for _ in range(per_request)]
            async with session.post(
                f"{server.url}/api/v1/alerts", data=template.body(fps), headers=server.headers
            ) as response:
                await response.read()
                if response.status == 200:
                    acked += per_request

    meter = CpuMeter(server.pids)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        before = await decided_total(session, server)
        meter.start()
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(*(sender(session) for _ in range(connections)))
        elapsed = time.monotonic() - started
        cpu = meter.stop()
        decided = await decided_total(session, server) - before
    return {
        "seconds": round(elapsed, 1),
        "alerts_acked": acked,
        "ingest_alerts_per_s": round(acked / elapsed),
        "decided": int(decided),
        "decided_per_s": round(decided / elapsed),
        "cpu": cpu,
    }
