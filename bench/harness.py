"""Shared pieces of the benchmark: the webhook template, the servers under test, wrk, and /proc readings."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "webhook.lua"
FIRING = ROOT / "examples" / "firing.json"
TOKEN = "bench-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FP_MARK = "@FP@"


# -- the webhook body -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """examples/firing.json (a real Alertmanager 0.25 webhook) cut into head, one alert, tail.

    The alert's fingerprint and its `instance` label are replaced per alert, so every alert is a new one (the
    dedupe key is fingerprint, status, startsAt), and alerts of one group differ as they do in Alertmanager.
    """

    head: str
    alert: str
    tail: str

    @classmethod
    def from_example(cls, path: Path = FIRING) -> Template:
        payload = json.loads(path.read_text())
        alert = payload["alerts"][0]
        alert["fingerprint"] = FP_MARK
        alert["labels"]["instance"] = f"{FP_MARK}:9101"
        payload["alerts"] = ["@ALERTS@"]
        head, tail = json.dumps(payload).split('"@ALERTS@"')
        return cls(head, json.dumps(alert), tail)

    def write(self, path: Path) -> Path:
        path.write_text(f"{self.head}\n{self.alert}\n{self.tail}\n")
        return path

    def body(self, fingerprints: Sequence[str]) -> bytes:
        parts = self.alert.split(FP_MARK)
        return (self.head + ",".join(fp.join(parts) for fp in fingerprints) + self.tail).encode()


def fingerprint(prefix: str, n: int) -> str:
    """16 hex digits, like Alertmanager's: a 4-digit prefix per run, then a counter (as bench/webhook.lua)."""
    return f"{prefix}{n:012x}"


# -- /proc ------------------------------------------------------------------------------------------------------


def _stat(pid: int | str) -> tuple[int, float, float] | None:
    """(ppid, own CPU seconds, CPU seconds of its reaped children) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), counted from field 3.
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return int(fields[1]), own, children


def cpu_seconds(pids: Sequence[int], *, reaped_children: bool = True) -> float:
    """User + system CPU time of these processes (those alive now) and, by default, of their children that exited
    and were reaped: a PostgreSQL backend or autovacuum worker that ends between two readings stays counted (in
    the postmaster) instead of taking its CPU time out of the sum."""
    return sum(found[1] + (found[2] if reaped_children else 0.0) for found in map(_stat, pids) if found is not None)


def system_busy_seconds() -> float:
    """CPU time spent busy by the whole machine (all cores) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _processes() -> dict[int, tuple[int, float, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(entry.name)
            if stat is not None:
                found[int(entry.name)] = stat
    return found


def _descendants(processes: dict[int, tuple[int, float, float]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    return tree


def other_processes_cpu(
    before: dict[int, tuple[int, float, float]], after: dict[int, tuple[int, float, float]]
) -> float:
    """CPU used meanwhile by user-space processes outside this benchmark's process tree: other work sharing the
    machine. Summing each process's own and its reaped children's time keeps a process that exited meanwhile
    counted (in its parent); a process that started meanwhile counts from zero. Kernel threads are left out."""
    ours = _descendants(after, os.getpid()) | _descendants(before, os.getpid())

    def total(processes: dict[int, tuple[int, float, float]]) -> float:
        return sum(
            own + children
            for pid, (ppid, own, children) in processes.items()
            if pid not in ours and pid != 2 and ppid != 2
        )

    return max(0.0, total(after) - total(before))


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class CpuMeter:
    """CPU used between start() and stop(), in cores: by the measured processes, by this bench process (load
    generators running in it), by processes outside the benchmark, and by the whole machine."""

    pids: Callable[[], Sequence[int]]
    _wall: float = 0.0
    _own: float = 0.0
    _bench: float = 0.0
    _all: float = 0.0
    _procs: dict[int, tuple[int, float, float]] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._procs = _processes()
        self._wall, self._own, self._all = time.monotonic(), cpu_seconds(self.pids()), system_busy_seconds()
        self._bench = cpu_seconds([os.getpid()], reaped_children=False)

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        own = cpu_seconds(self.pids()) - self._own
        bench = cpu_seconds([os.getpid()], reaped_children=False) - self._bench
        machine = system_busy_seconds() - self._all
        others = other_processes_cpu(self._procs, _processes())
        self.result = {
            "server_cores": round(own / wall, 2),
            "bench_process_cores": round(bench / wall, 2),
            "other_processes_cores": round(others / wall, 2),
            "machine_cores": round(machine / wall, 2),
        }
        return self.result


def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "memory_mb": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    info["wrk"] = _first_line(["wrk", "--version"])
    pg_bin = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
    info["postgres"] = _first_line([str(pg_bin / "postgres"), "-V"])
    import sqlite3  # noqa: PLC0415 - only for its version

    info["sqlite"] = sqlite3.sqlite_version
    info["aiohttp"] = aiohttp.__version__
    return info


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


# -- the servers under test ------------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process under test: its URL, its process, and the other processes whose CPU counts for it."""

    name: str
    proc: ManagedProcess
    url: str
    extra_pids: Callable[[], Sequence[int]] = lambda: []
    config_dir: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.extra_pids()]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def stop(self) -> None:
        self.proc.stop(timeout=15.0)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AUTOREMEDY_", "PG"))}


async def start_bare(workdir: Path) -> Server:
    port = free_port()
    proc = ManagedProcess(
        [sys.executable, str(BENCH / "bare_server.py"), str(port)], log_dir=workdir, name="bare", env=_clean_env()
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        await proc.wait_http_ok(f"{url}/healthz")
    except BaseException:
        proc.stop()
        raise
    return Server("bare aiohttp", proc, url)


NO_MATCH_RULE = {"name": "bench-no-match", "matchers": ["alertname = BenchNeverFires"], "playbook": "bench-log"}
LOG_PLAYBOOK = {
    "name": "bench-log",
    "target": "alert/{{ alert.fingerprint }}",
    "steps": [{"name": "log", "action": "log", "with": {"message": "{{ alert.fingerprint }}"}}],
}


def action_rule_and_playbook(receiver_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rule matching the template's alert, whose playbook's first step POSTs the fingerprint to receiver_url."""
    rule = {"name": "bench-first-action", "matchers": ["alertname = DemoAppDown"], "playbook": "bench-http"}
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


NO_BACKPRESSURE = {"max_queue_depth": 10_000_000}


def write_config(
    root: Path,
    *,
    store_url: str,
    rules: list[dict[str, Any]],
    playbooks: list[dict[str, Any]],
    engine: dict[str, Any] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "playbooks").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "bench.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    for playbook in playbooks:
        (root / "playbooks" / f"{playbook['name']}.yaml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    config = {
        "server": {"listen": f"127.0.0.1:{free_port()}", "auth": {"bearer_tokens": [TOKEN]}},
        "store": {"url": store_url},
        # Backpressure would answer 503 and cut the measurement short: the bench measures what is accepted.
        "engine": NO_BACKPRESSURE if engine is None else engine,
        "guardrails": {"breaker": {"max_runs": 1_000_000_000}},
        "logging": {"level": "warning"},
        "rules_dir": "rules",
        "playbooks_dir": "playbooks",
    }
    path = root / "autoremedy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def start_autoremedy(
    root: Path,
    name: str,
    *,
    store_url: str,
    rules: list[dict[str, Any]] | None = None,
    playbooks: list[dict[str, Any]] | None = None,
    extra_pids: Callable[[], Sequence[int]] = lambda: [],
    engine: dict[str, Any] | None = None,
    before_start: Callable[[Path], Awaitable[Any]] | None = None,
    source: Path | None = None,
) -> Server:
    """`engine`: the config's engine section (default: no backpressure); `before_start(root)` runs once the
    config is written, before the process starts (e.g. to fill its store); `source`: another autoremedy source
    tree (its `src/`) to run instead of the installed one (a baseline measured in the same run)."""
    config_path = write_config(
        root,
        store_url=store_url,
        rules=rules or [NO_MATCH_RULE],
        playbooks=playbooks or [LOG_PLAYBOOK],
        engine=engine,
    )
    if before_start is not None:
        await before_start(root)
    listen = yaml.safe_load(config_path.read_text())["server"]["listen"]
    proc = ManagedProcess(
        [sys.executable, "-m", "autoremedy", "--config", str(config_path), "serve"],
        log_dir=root,
        name="autoremedy",
        cwd=root,
        env={**_clean_env(), "PYTHONPATH": str(source / "src")} if source is not None else _clean_env(),
    ).start()
    url = f"http://{listen}"
    try:
        await proc.wait_http_ok(f"{url}/readyz")
    except BaseException:
        proc.stop()
        raise
    return Server(name, proc, url, extra_pids=extra_pids, config_dir=root)


async def queue_depth(session: aiohttp.ClientSession, server: Server) -> int:
    async with session.get(f"{server.url}/api/v1/status", headers=server.headers) as response:
        response.raise_for_status()
        return int((await response.json())["queue_depth"])


async def alert_counters(session: aiohttp.ClientSession, server: Server) -> dict[str, float]:
    """From /metrics: alerts received (duplicates included), duplicates, and webhook answers by status."""
    async with session.get(f"{server.url}/metrics") as response:
        text = await response.text()
    counters: dict[str, float] = {"received": 0.0, "duplicates": 0.0}
    for line in text.splitlines():
        if line.startswith("autoremedy_alerts_received_total{"):
            counters["received"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("autoremedy_alert_duplicates_total "):
            counters["duplicates"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("autoremedy_webhook_responses_total{"):
            code = line.split('code="', 1)[1].split('"', 1)[0]
            counters[f"http_{code}"] = float(line.rsplit(" ", 1)[1])
    return counters


# -- wrk --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    per_request: int
    mode: str  # unique | duplicate
    label: str
    connections: int = 32


_prefixes = iter(range(0x1000, 0x10000))


def next_prefix() -> str:
    """A fresh 4-hex-digit fingerprint prefix: every wrk run sends alerts no earlier run sent."""
    return f"{next(_prefixes):04x}"


def run_wrk(url: str, template_path: Path, load: Load, *, seconds: int, threads: int = 1) -> dict[str, Any]:
    """Run wrk (blocking) and return its WRK_JSON summary plus wrk's own CPU use."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"{url}/api/v1/alerts",
        "--",
        str(template_path),
        str(load.per_request),
        load.mode,
        next_prefix(),
        TOKEN,
    ]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0 or "WRK_JSON " not in text:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(argv)}\n{text}")
    summary: dict[str, Any] = json.loads(text.split("WRK_JSON ", 1)[1].splitlines()[0])
    summary["wrk_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    return summary


async def measure_wrk(
    server: Server, template_path: Path, load: Load, *, seconds: int, warmup_s: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """A warm-up run (discarded), then the measured run; returns wrk's summary and the CPU used meanwhile."""
    if warmup_s > 0:
        await asyncio.to_thread(run_wrk, server.url, template_path, load, seconds=warmup_s)
    meter = CpuMeter(server.pids)
    meter.start()
    summary = await asyncio.to_thread(run_wrk, server.url, template_path, load, seconds=seconds)
    cpu = meter.stop()
    cpu["wrk_cores"] = round(summary["wrk_cpu_seconds"] / (summary["duration_us"] / 1e6), 2)
    return summary, cpu


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[rank]
