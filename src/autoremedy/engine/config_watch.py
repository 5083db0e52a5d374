"""Reload rules and playbooks when their files change, as SIGHUP does, without anyone sending a signal.

Polling, because inotify is not there on every volume (network filesystems, some container runtimes). What is
compared each poll: every *.yaml / *.yml file of the folders as `stat` sees it through symlinks (inode, size,
mtime and ctime), and where the folder's `..data` symlink points. That catches the three ways files change:
an edit in place, an editor's write-to-temp-then-rename (a new inode), and Kubernetes' ConfigMap volume update,
which writes a new timestamped folder and swaps the `..data` symlink to it in one rename.

Debounced: after a change the watcher waits until the files stay the same for `settle`, so a `git checkout` or a
half-written set is loaded once, whole. A reload that finds a broken set keeps the running one (Daemon.reload).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from autoremedy.background import BackgroundLoop
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.models.clock import Clock
from autoremedy.observability import get_logger

log = get_logger("autoremedy.config_watch")
Snapshot = tuple[tuple[str, object], ...]
KUBERNETES_DATA_LINK = "..data"


def snapshot(folders: Sequence[Path]) -> Snapshot:
    """What the folders hold now, as far as a reload cares."""
    found: list[tuple[str, object]] = []
    for folder in folders:
        found.append((f"{folder}/{KUBERNETES_DATA_LINK}", _link_target(folder / KUBERNETES_DATA_LINK)))
        try:
            names = sorted(name for name in os.listdir(folder) if name.endswith((".yaml", ".yml")))
        except OSError as exc:
            found.append((str(folder), type(exc).__name__))
            continue
        found.extend((f"{folder}/{name}", _stat(folder / name)) for name in names)
    return tuple(found)


def _link_target(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _stat(path: Path) -> object:
    try:
        info = path.stat()
    except OSError as exc:  # a dangling symlink in the middle of a swap
        return type(exc).__name__
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class FolderWatcher:
    """Calls `on_change` once the folders changed and then stayed the same for `settle` seconds."""

    def __init__(
        self,
        folders: Sequence[Path],
        *,
        poll_interval: float,
        settle: float,
        on_change: Callable[[], Awaitable[object]],
        errors: Counter,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._folders = tuple(folders)
        self._settle = settle
        self._on_change = on_change
        self._seen: Snapshot = ()
        self._loop = BackgroundLoop("rules-watch", self._turn, poll_interval=poll_interval, errors=errors, clock=clock)

    async def start(self) -> asyncio.Task[None]:
        """Start watching from what the folders hold now; the task that watches."""
        self._seen = await self._look()
        return self._loop.start()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._loop.task

    async def stop(self) -> None:
        await self._loop.stop()

    async def _look(self) -> Snapshot:
        return await asyncio.to_thread(snapshot, self._folders)

    async def _turn(self) -> None:
        current = await self._look()
        if current == self._seen:
            return
        while await self._loop.pause(self._settle):  # wait until the change is complete
            again = await self._look()
            if again == current:
                break
            current = again
        if self._loop.stopping:
            return
        self._seen = current
        await log.ainfo("rules or playbooks changed on disk; reloading")
        try:
            await self._on_change()
        except Exception:  # a reload bug must not end the watching
            await log.aexception("reload after a file change failed")


@dataclass
class ReloadStatus:
    """The last load of rules and playbooks, for `autoremedy status` and the metrics Prometheus-style tools read."""

    success: Gauge
    success_time: Gauge
    ok: bool = True
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    problems: list[str] = field(default_factory=list)

    def record(self, *, ok: bool, now: datetime, problems: Sequence[str] = ()) -> None:
        self.ok, self.last_attempt_at, self.problems = ok, now, list(problems)
        self.success.set(1 if ok else 0)
        if ok:
            self.last_success_at = now
            self.success_time.set(now.timestamp())

    def as_json(self) -> dict[str, Any]:
        return {
            "last_reload_success": self.ok,
            "last_reload_at": self.last_attempt_at.isoformat() if self.last_attempt_at else None,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "problems": self.problems,
        }
