"""A fixed number of alerts into autoremedy as fast as it accepts them, then its memory and the decider's drain.

wrk cannot stop after a count, so this is an aiohttp sender with bounded concurrency (as many connections as the
wrk runs use). Every alert is new (unique fingerprints). A 503 (backpressure) is retried after a pause and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.harness import CpuMeter, Server, Template, fingerprint, memory_kb, next_prefix, queue_depth


@dataclass
class Progress:
    webhooks_done: int = 0
    alerts_acked: int = 0
    retries_503: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)


async def _sender(
    *,
    session: aiohttp.ClientSession,
    server: Server,
    template: Template,
    work: Iterator[list[str]],
    progress: Progress,
    deadline: float,
) -> None:
    url = f"{server.url}/api/v1/alerts"
    for fingerprints in work:  # one iterator shared by every sender
        if time.monotonic() >= deadline:
            break
        body = template.body(fingerprints)
        while True:
            async with session.post(url, data=body, headers=server.headers) as response:
                await response.read()
                if response.status == 200:
                    break
                if response.status != 503:
                    raise RuntimeError(f"webhook answered {response.status}")
            progress.retries_503 += 1
            await asyncio.sleep(0.1)
        progress.webhooks_done += 1
        progress.alerts_acked += len(fingerprints)


async def _sample_memory(server: Server, progress: Progress, started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        memory = memory_kb(server.pid)
        progress.timeline.append(
            {
                "t_s": round(time.monotonic() - started, 1),
                "alerts_acked": progress.alerts_acked,
                "rss_mb": round(memory["VmRSS"] / 1024, 1),
            }
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def ingest(
    server: Server, template: Template, *, alerts: int, per_request: int, connections: int, max_seconds: float
) -> dict[str, Any]:
    prefix = next_prefix()
    work = (
        [fingerprint(prefix, n) for n in range(start, min(start + per_request, alerts))]
        for start in range(0, alerts, per_request)
    )
    progress = Progress()
    baseline = memory_kb(server.pid)
    started = time.monotonic()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_memory(server, progress, started, stop))
    meter = CpuMeter(server.pids)
    meter.start()
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        deadline = started + max_seconds
        await asyncio.gather(
            *(
                _sender(
                    session=session, server=server, template=template, work=work, progress=progress, deadline=deadline
                )
                for _ in range(connections)
            )
        )
        elapsed = time.monotonic() - started
        cpu = meter.stop()
        stop.set()
        await sampler
        memory = memory_kb(server.pid)
        depth = await queue_depth(session, server)
    return {
        "alerts_target": alerts,
        "alerts_acked": progress.alerts_acked,
        "complete": progress.alerts_acked == alerts,
        "alerts_per_request": per_request,
        "connections": connections,
        "seconds": round(elapsed, 1),
        "alerts_per_s": round(progress.alerts_acked / elapsed),
        "retries_503": progress.retries_503,
        "rss_before_mb": round(baseline["VmRSS"] / 1024, 1),
        "vm_hwm_mb": round(memory["VmHWM"] / 1024, 1),
        "vm_rss_mb": round(memory["VmRSS"] / 1024, 1),
        "queue_depth_after": depth,
        "decided_during_ingest": progress.alerts_acked - depth,
        "decided_per_s_during_ingest": round((progress.alerts_acked - depth) / elapsed),
        "cpu": cpu,
        "rss_timeline": progress.timeline[:: max(1, len(progress.timeline) // 60)],
    }


async def drain(server: Server, *, max_seconds: float, interval_s: float = 2.0) -> dict[str, Any]:
    """Watch the queue depth until it is empty or max_seconds pass; the worker's decision rate meanwhile."""
    samples: list[tuple[float, int]] = []
    meter = CpuMeter(server.pids)
    meter.start()
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            depth = await queue_depth(session, server)
            samples.append((time.monotonic() - started, depth))
            if depth == 0 or samples[-1][0] >= max_seconds:
                break
            await asyncio.sleep(interval_s)
    (t0, d0), (t1, d1) = samples[0], samples[-1]
    rate = (d0 - d1) / (t1 - t0) if t1 > t0 else None
    memory = memory_kb(server.pid)
    return {
        "cpu": meter.stop(),
        "depth_at_start": d0,
        "depth_at_end": d1,
        "watched_s": round(t1, 1),
        "drained": d1 == 0,
        "decided_per_s": round(rate) if rate is not None else None,
        "estimated_total_drain_s": round(d0 / rate) if rate else None,
        "vm_hwm_mb_after": round(memory["VmHWM"] / 1024, 1),
        "vm_rss_mb_after": round(memory["VmRSS"] / 1024, 1),
        "samples": [{"t_s": round(t, 1), "queue_depth": d} for t, d in samples],
    }
