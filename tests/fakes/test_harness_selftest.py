"""Self-test of the e2e harness: the whole alert loop with real Prometheus and Alertmanager, no autoremedy.

GaugeExporter --scrape--> Prometheus --rule--> Alertmanager --webhook--> RecordingReceiver
"""

from __future__ import annotations

import base64
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.procs import ManagedProcess, ProcessNotReady, wait_for
from tests.support.prometheus import PromStackFactory, demo_down_rules
from tests.support.receiver import GaugeExporter, RecordedRequest, RecordingReceiver

DEADLINE_S = 30.0
TOKEN = "s3cret-token"
LABELS = {"namespace": "default", "app": "web"}
RULES = demo_down_rules()


def _webhooks(receiver: RecordingReceiver, status: str) -> list[RecordedRequest]:
    return [
        r
        for r in receiver.requests_to("/webhook", method="POST")
        if isinstance(r.json, dict) and r.json.get("status") == status
    ]


def _seen(receiver: RecordingReceiver) -> str:
    return f"received so far: {[(r.method, r.path, r.json) for r in receiver.requests]}"


@pytest.mark.e2e
async def test_alert_fires_and_resolves_through_real_prometheus_and_alertmanager(
    receiver: RecordingReceiver, gauge_exporter: GaugeExporter, prom_stack: PromStackFactory
) -> None:
    gauge_exporter.set("demo_healthy", 1, labels=LABELS)
    t0 = time.monotonic()
    stack = await prom_stack(
        webhook_url=f"{receiver.url}/webhook",
        rules_yaml=RULES,
        scrape_targets=[gauge_exporter.host_port],
        bearer_token=TOKEN,
    )
    startup_s = time.monotonic() - t0

    # Prometheus holds the healthy value before anything is flipped.
    await wait_for(
        lambda: _query_value(stack.query, "demo_healthy"),
        timeout=DEADLINE_S,
        message="Prometheus never saw demo_healthy == 1",
    )
    assert receiver.requests == []

    gauge_exporter.set("demo_healthy", 0, labels=LABELS)
    flipped = time.monotonic()
    [firing_req] = await wait_for(
        lambda: _webhooks(receiver, "firing"),
        timeout=DEADLINE_S,
        message=lambda: f"no firing webhook; {_seen(receiver)}\n{stack.log_tails()}",
    )
    firing_s = firing_req.received_at - flipped

    assert firing_req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert firing_req.headers["Content-Type"].startswith("application/json")
    assert firing_req.headers["User-Agent"].startswith("Alertmanager/")
    firing: dict[str, Any] = firing_req.json
    assert firing["version"] == "4"
    assert firing["receiver"] == "autoremedy"
    assert firing["groupLabels"] == {"alertname": "DemoAppDown", "namespace": "default"}
    [alert] = firing["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "DemoAppDown",
        "severity": "critical",
        "namespace": "default",
        "app": "web",
        "job": "demo",
        "instance": gauge_exporter.host_port,
    }
    assert alert["annotations"] == {"summary": "web unhealthy"}
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"

    gauge_exporter.set("demo_healthy", 1, labels=LABELS)
    flipped = time.monotonic()
    [resolved_req] = await wait_for(
        lambda: _webhooks(receiver, "resolved"),
        timeout=DEADLINE_S,
        message=lambda: f"no resolved webhook; {_seen(receiver)}\n{stack.log_tails()}",
    )
    resolved_s = resolved_req.received_at - flipped

    resolved: dict[str, Any] = resolved_req.json
    assert resolved_req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert resolved["version"] == "4"
    [resolved_alert] = resolved["alerts"]
    assert resolved_alert["status"] == "resolved"
    assert resolved_alert["fingerprint"] == alert["fingerprint"]
    assert resolved_alert["labels"] == alert["labels"]
    assert resolved_alert["endsAt"] != "0001-01-01T00:00:00Z"
    # One webhook per state change: nothing but the firing and the resolved notification arrived.
    assert receiver.requests == [firing_req, resolved_req]

    print(
        f"\nstack startup {startup_s:.2f}s, flip->firing {firing_s:.3f}s, flip->resolved {resolved_s:.3f}s",
        file=sys.stderr,
    )


async def _query_value(query: Any, expr: str) -> bool:
    result = await query(expr)
    return len(result) == 1 and result[0]["value"][1] == "1"


@pytest.mark.e2e
async def test_basic_auth_reaches_the_webhook(
    receiver: RecordingReceiver, gauge_exporter: GaugeExporter, prom_stack: PromStackFactory
) -> None:
    gauge_exporter.set("demo_healthy", 0, labels=LABELS)
    stack = await prom_stack(
        webhook_url=f"{receiver.url}/webhook",
        rules_yaml=RULES,
        scrape_targets=[gauge_exporter.metrics_url],
        basic_auth=("alice", "pa:ss"),
    )
    [req] = await wait_for(
        lambda: _webhooks(receiver, "firing"),
        timeout=DEADLINE_S,
        message=lambda: f"no firing webhook; {_seen(receiver)}\n{stack.log_tails()}",
    )
    expected = base64.b64encode(b"alice:pa:ss").decode()
    assert req.headers["Authorization"] == f"Basic {expected}"


# ---- the harness pieces on their own (no Prometheus) -----------------------------------------------------


async def test_wait_for_raises_assertion_with_message_at_deadline() -> None:
    calls = 0

    async def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="the thing happened"):
        await wait_for(never, timeout=0.2, message="the thing happened")
    assert 0.2 <= time.monotonic() - t0 < 2.0
    assert calls > 1
    assert await wait_for(lambda: 42, timeout=1, message="unused") == 42


async def test_early_exit_is_reported_with_log_tail(tmp_path: Path) -> None:
    proc = ManagedProcess(
        [sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(3)"],
        log_dir=tmp_path,
        name="crasher",
    ).start()
    try:
        with pytest.raises(ProcessNotReady, match="exited with 3") as info:
            await proc.wait_http_ok("http://127.0.0.1:1/-/ready", deadline_s=DEADLINE_S)
        assert "boom: bad flag" in info.value.log_tail
    finally:
        proc.stop()


async def test_stop_escalates_to_sigkill_for_the_whole_group(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('child', child.pid, flush=True)\n"
        "while True: time.sleep(0.05)\n"
    )
    proc = ManagedProcess([sys.executable, "-c", script], log_dir=tmp_path, name="stubborn").start()
    try:
        line: str = await wait_for(
            lambda: _complete_line(proc, "child"),
            timeout=DEADLINE_S,
            message="child never started",
        )
        child_pid = int(line.split()[1])
        t0 = time.monotonic()
        assert proc.stop(timeout=0.3) == -9
        assert time.monotonic() - t0 < 5
        # The grandchild got the group's signal too (gone, or a zombie awaiting its reaper).
        await wait_for(lambda: _gone_or_zombie(child_pid), timeout=DEADLINE_S, message="grandchild survived")
    finally:
        proc.kill9()


async def test_managed_process_dies_with_a_killed_test_runner(tmp_path: Path) -> None:
    # A stand-in "test runner" starts a ManagedProcess, then is SIGKILLed: no cleanup code runs in it.
    runner_code = (
        "import sys, time\n"
        "from tests.support.procs import ManagedProcess\n"
        "p = ManagedProcess([sys.executable, '-c', 'import time; time.sleep(600)'],"
        f" log_dir={str(tmp_path)!r}, name='orphan').start()\n"
        "print('pid', p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    runner = ManagedProcess(
        [sys.executable, "-c", runner_code], log_dir=tmp_path, name="runner", cwd=Path(__file__).parents[2]
    ).start()
    try:
        line: str = await wait_for(
            lambda: _complete_line(runner, "pid"),
            timeout=DEADLINE_S,
            message=lambda: f"runner did not start its process: {runner.log_tail()}",
        )
        orphan_pid = int(line.split()[1])
        # The orphan has its own process group: killing the runner's group cannot reach it, only pdeathsig.
        assert os.getpgid(orphan_pid) != runner.pid
        runner.kill9()
        await wait_for(lambda: _gone_or_zombie(orphan_pid), timeout=DEADLINE_S, message="orphan survived its runner")
    finally:
        runner.kill9()


def _gone_or_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}


async def test_receiver_records_and_answers_configured_status(receiver: RecordingReceiver) -> None:
    receiver.set_response("/fail", 503, {"error": "busy"})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{receiver.url}/fail?x=1", json={"a": 1}) as resp:
            assert resp.status == 503
            assert await resp.json() == {"error": "busy"}
        async with session.put(f"{receiver.url}/ok", data=b"not json") as resp:
            assert resp.status == 200
    fail, ok = await receiver.wait_for_requests(2, deadline_s=DEADLINE_S)
    assert (fail.method, fail.path, fail.query["x"], fail.json) == ("POST", "/fail", "1", {"a": 1})
    assert (ok.method, ok.path, ok.body, ok.json) == ("PUT", "/ok", b"not json", None)
    assert receiver.requests_to("/ok") == [ok]


async def test_gauge_exporter_renders_text_format(gauge_exporter: GaugeExporter) -> None:
    gauge_exporter.set("g", 1, labels={"b": 'x"y', "a": "1"})
    gauge_exporter.set("g", float("nan"))
    gauge_exporter.set("h", 2.5)
    async with aiohttp.ClientSession() as session, session.get(gauge_exporter.metrics_url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    assert text == '# TYPE g gauge\ng NaN\ng{a="1",b="x\\"y"} 1.0\n# TYPE h gauge\nh 2.5\n'
    assert gauge_exporter.scrape_count == 1


def _complete_line(proc: ManagedProcess, word: str) -> str:
    """`word N` once the whole line is in the log (a line being written may be seen half-way)."""
    match = re.search(rf"^{word} \d+\n", proc.log_path.read_text(errors="replace"), re.M)
    return match.group(0).strip() if match else ""
