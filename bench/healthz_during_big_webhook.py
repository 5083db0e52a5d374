"""How long one 4 MiB webhook (~18,000 alerts) keeps autoremedy from answering `/healthz` (issue 12).

A daemon on SQLite (one rule that matches nothing, backpressure off) gets one webhook just under
`server.max_body_bytes`, while a prober in its own thread and event loop asks `/healthz` back to back. Reported per
round: how long the webhook took to be acknowledged, how many probes answered while it was in flight, the slowest
probe and the longest gap between two answers (a stalled event loop shows as one long probe), and the same for the
seconds after the acknowledgement, while the worker decides the stored alerts.

    .venv/bin/python bench/healthz_during_big_webhook.py              # this tree's code
    git archive main src | tar -x -C /tmp/main-code                   # another tree's code, e.g. main's:
    .venv/bin/python bench/healthz_during_big_webhook.py --src /tmp/main-code/src
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from tests.support.procs import ManagedProcess  # noqa: E402

from bench.harness import LOG_PLAYBOOK, NO_MATCH_RULE, TOKEN, fingerprint, percentile, write_config  # noqa: E402

MAX_BODY = 4 * 1024 * 1024


def big_webhook(alerts: int, prefix: str) -> bytes:
    """An Alertmanager webhook of `alerts` small alerts (about 230 bytes each: two labels, no annotations)."""
    body = {
        "version": "4",
        "receiver": "autoremedy",
        "status": "firing",
        "groupKey": '{}:{alertname="NodeDown"}',
        "externalURL": "http://am:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "NodeDown", "instance": f"10.0.{n // 250}.{n % 250}"},
                "annotations": {},
                "startsAt": "2026-11-26T22:15:01Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom:9090/",
                "fingerprint": fingerprint(prefix, n),
            }
            for n in range(alerts)
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Probes:
    """/healthz answers: (time answered, latency) pairs, from the prober's thread."""

    answers: list[tuple[float, float]] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def window(self, start: float, end: float) -> dict[str, Any]:
        inside = [(at, took) for at, took in self.answers if start <= at <= end]
        times = [start] + [at for at, _ in inside] + [end]
        latencies = sorted(took for _, took in inside)
        return {
            "probes": len(inside),
            "max_ms": round(1000 * max(latencies, default=0.0), 1),
            "p99_ms": round(1000 * percentile(latencies, 0.99), 1) if latencies else None,
            "longest_gap_ms": round(1000 * max(b - a for a, b in itertools.pairwise(times)), 1),
        }


def probe_forever(url: str, probes: Probes) -> None:
    async def loop() -> None:
        async with aiohttp.ClientSession() as http:
            while not probes.stop.is_set():
                began = time.perf_counter()
                try:
                    async with http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=30)) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                done = time.perf_counter()
                if ok:
                    probes.answers.append((done, done - began))
                else:
                    probes.failures += 1
                await asyncio.sleep(0.002)

    asyncio.run(loop())


async def start_daemon(root: Path, src: Path | None) -> tuple[ManagedProcess, str]:
    config_path = write_config(
        root, store_url="sqlite:///var/autoremedy.db", rules=[NO_MATCH_RULE], playbooks=[LOG_PLAYBOOK]
    )
    listen = yaml.safe_load(config_path.read_text())["server"]["listen"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOREMEDY_", "PG"))}
    if src is not None:  # the code under test, ahead of the installed (editable) package
        env["PYTHONPATH"] = str(src)
    proc = ManagedProcess(
        [sys.executable, "-m", "autoremedy", "--config", str(config_path), "serve"],
        log_dir=root,
        name="autoremedy",
        cwd=root,
        env=env,
    ).start()
    url = f"http://{listen}"
    try:
        await proc.wait_http_ok(f"{url}/readyz")
    except BaseException:
        proc.stop()
        raise
    return proc, url


async def one_round(url: str, body: bytes, *, settle: float) -> dict[str, Any]:
    probes = Probes()
    prober = threading.Thread(target=probe_forever, args=(url, probes), daemon=True)
    prober.start()
    try:
        await asyncio.sleep(0.5)  # the prober is answering before the webhook goes out
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            sent = time.perf_counter()
            async with http.post(f"{url}/api/v1/alerts", data=body, headers=headers) as response:
                answer = await response.text()
                status = response.status
            acked = time.perf_counter()
        await asyncio.sleep(settle)
        ended = time.perf_counter()
    finally:
        probes.stop.set()
        await asyncio.to_thread(prober.join)
    return {
        "status": status,
        "answer": answer[:200],
        "webhook_s": round(acked - sent, 3),
        "during_webhook": probes.window(sent, acked),
        "after_ack": probes.window(acked, ended),
        "probe_failures": probes.failures,
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-healthz-") as tmp:
        proc, url = await start_daemon(Path(tmp), args.src)
        try:
            for round_no in range(args.rounds):
                body = big_webhook(args.alerts, prefix=f"b{round_no:03x}")
                if len(body) > MAX_BODY:
                    raise SystemExit(f"body of {len(body)} bytes is over {MAX_BODY}: use fewer --alerts")
                result = await one_round(url, body, settle=args.settle)
                print(json.dumps({"round": round_no, "body_bytes": len(body), "alerts": args.alerts, **result}))
        finally:
            proc.stop(timeout=15.0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=18_000)
    parser.add_argument("--rounds", type=int, default=3, help="webhooks, each with new alerts")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds probed after each acknowledgement")
    parser.add_argument("--src", type=Path, help="run the daemon from this src directory (e.g. main's)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
