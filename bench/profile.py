"""py-spy under load: collapsed stacks per thread, summarised as text (top frames by self and by total time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

RATE_HZ = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: int, output: Path, *, raw: bool) -> str:
    """Sample `pid` for `seconds`; raw writes collapsed stacks (one `stack count` line each), else a flame graph SVG."""
    exe = py_spy()
    if exe is None:
        raise FileNotFoundError("py-spy missing: .venv/bin/python -m pip install py-spy")
    # --nonblocking: py-spy reads the process without pausing it, so the load is not slowed by the sampling.
    argv = [
        exe,
        "record",
        "-d",
        str(seconds),
        "-r",
        str(RATE_HZ),
        "--pid",
        str(pid),
        "-o",
        str(output),
        "--nonblocking",
    ]
    argv += ["--format", "raw", "--threads", "--nolineno"] if raw else ["--format", "flamegraph", "--nolineno"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr.strip()}")
    return done.stderr


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each thread of a process (from /proc/PID/task/TID/stat)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def summarise(raw: Path, seconds: float, cores: dict[int, float], top: int = 15) -> dict[str, Any]:
    """Per thread: the CPU it used (cores, from /proc), its samples, top frames by self and by total samples.

    py-spy leaves out samples of threads it sees idle, but a thread blocked in C code (a queue's lock) can look
    busy to it; the CPU column from /proc is the reliable one.
    """
    tids: dict[str, int] = {}
    buckets: dict[str, Counter[str]] = defaultdict(Counter)
    per_thread: Counter[str] = Counter()
    self_time: dict[str, Counter[str]] = defaultdict(Counter)
    total_time: dict[str, Counter[str]] = defaultdict(Counter)
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, *frames = stack.split(";")
        thread = head.split(": ", 1)[1] if ": " in head else head
        if head.startswith("thread (") and ")" in head:
            tids[thread] = int(head[len("thread (") : head.index(")")], 0)
        per_thread[thread] += count
        if frames:
            self_time[thread][frames[-1]] += count
        for frame in set(frames):
            total_time[thread][frame] += count
        buckets[thread][bucket(frames)] += count
    threads = []
    for thread, samples in per_thread.most_common():
        threads.append(
            {
                "thread": thread,
                "samples": samples,
                "cpu_cores": cores.get(tids.get(thread, -1)),
                "buckets": [
                    {"bucket": name, "pct_of_thread": round(100 * n / samples, 1)}
                    for name, n in buckets[thread].most_common()
                ],
                "top_self": [
                    {"frame": f, "pct_of_thread": round(100 * n / samples, 1)}
                    for f, n in self_time[thread].most_common(top)
                ],
                "top_total": [
                    {"frame": f, "pct_of_thread": round(100 * n / samples, 1)}
                    for f, n in total_time[thread].most_common(top * 3)
                    if _interesting(f)
                ][:top],
            }
        )
    return {"seconds": seconds, "rate_hz": RATE_HZ, "threads": threads}


_PLUMBING = (
    "threading.py",
    "concurrent/futures",
    "asyncio/runners.py",
    "<module>",
    "<frozen runpy>",
    "autoremedy/cli.py",
    "BaseEventLoop.run_forever ",
    "BaseEventLoop.run_until_complete ",
    "BaseEventLoop._run_once ",
    "Handle._run ",
)


def _interesting(frame: str) -> bool:
    """Total-time frames worth reading: not the interpreter's entry points, the loop's driver, thread plumbing."""
    return not any(part in frame for part in _PLUMBING) and not frame.startswith(("run (", "main ("))


# Where a sample's time goes, by the first rule whose marker is in its stack (rules in this order).
BUCKETS = (
    ("waiting in epoll (idle, or the kernel's share of socket I/O)", ("EpollSelector.select ",)),
    ("worker: claiming and deciding events", ("Worker._decide_pending ",)),
    ("worker: executing runs (executor, actions, recording steps)", ("Worker._execute ", "autoremedy/engine/executor")),
    ("worker: the rest of its loop (claiming runs, queue depth, approvals)", ("autoremedy/engine/",)),
    ("escalation outbox (woken after every decision)", ("autoremedy/notify/",)),
    ("group commit and the store (event loop side: rows, thread hop)", ("autoremedy/store/groupcommit.py",)),
    ("the store's code: SQL statements, rows, inserts and commits", ("autoremedy/store/",)),
    ("parsing and validating the webhook (pydantic)", ("model_validate_json ",)),
    ("alert events from the payload (pydantic models, times)", ("events_from_payload ",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("the JSON answer", ("json_response ",)),
    ("the rest of the webhook handler (authentication, routing)", ("autoremedy/ingest/",)),
    ("socket reads and writes (asyncio transports)", ("_SelectorSocketTransport.",)),
    ("waking the event loop from the writer thread", ("call_soon_threadsafe ", "_read_from_self ")),
    ("aiohttp HTTP parsing, routing and response machinery", ("aiohttp/",)),
    ("idle worker thread waiting for work", ("concurrent/futures/thread.py",)),
    ("asyncio event loop", ("asyncio/",)),
)


def bucket(frames: list[str]) -> str:
    stack = ";".join(frames)
    for name, markers in BUCKETS:
        if any(marker in stack for marker in markers):
            return name
    return "other"
