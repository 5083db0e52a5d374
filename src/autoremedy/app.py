"""The daemon: starts, supervises and stops the parts that components.py builds from settings; reloads rules.

The long-lived loops (group commit, decider, worker, heartbeat, escalation sender, rules watcher) are supervised:
each catches what goes wrong with one item and goes on (autoremedy.background); if one ends anyway, /readyz names
it, the daemon shuts down and the process exits non-zero, so Kubernetes (or systemd) restarts it rather than
leaving a daemon that acknowledges alerts and never acts.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import signal
from pathlib import Path
from typing import IO

from aiohttp import web

from autoremedy.actions.base import ActionRegistry
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.components import (
    Components,
    ConfigError,
    Foundation,
    build_components,
    build_foundation,
    load_rules,
    open_store,
)
from autoremedy.config.settings import Settings
from autoremedy.config.yamlfile import FileProblems
from autoremedy.decide.planning import Ruleset
from autoremedy.models.clock import Clock
from autoremedy.observability import get_logger

__all__ = ["ConfigError", "Daemon", "FileLock", "StoreInUse", "load_rules", "open_store", "run_until_stopped", "serve"]

log = get_logger("autoremedy")
RESTART_REASON = "the daemon stopped while the run was in progress (crash or kill); not resumed"


class StoreInUse(ConfigError):
    """Another process already uses this SQLite file."""


class FileLock:
    """An exclusive flock on a sidecar file next to the SQLite database, holding the owner's pid.

    SQLite itself would let a second daemon share the file, and each would run the other's work (both think they
    are alone: `solo`). The kernel releases a flock when its process dies, even on kill -9, so a stale lock file
    never blocks a restart.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreInUse(
                f"{self.path.with_suffix('')}: already in use by another autoremedy process (pid {holder}); "
                "one SQLite file serves one daemon: stop the other one, or use PostgreSQL for replicas"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the last descriptor releases the flock
            self._file = None


class Daemon:
    """Starts the parts in dependency order, watches the loops, stops them in the reverse order with a grace."""

    def __init__(
        self, settings: Settings, *, registry: ActionRegistry | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.settings = settings
        self.base: Foundation = build_foundation(settings, registry=registry, clock=clock)
        self.store, self.metrics, self.registry = self.base.store, self.base.metrics, self.base.registry
        self.reload_status = self.base.reload_status
        self.parts: Components | None = None
        self._runner: web.AppRunner | None = None
        self._lock = FileLock(settings.sqlite_path) if settings.sqlite_path is not None else None
        self._stopping = False
        self.dead_loops: dict[str, str] = {}
        """Long-lived tasks that ended while the daemon ran, with why: readiness fails and the process exits."""
        self.faulted = asyncio.Event()

    @property
    def ruleset(self) -> Ruleset:
        return self.base.rules.current

    async def start(self) -> None:
        if self._lock is not None:
            self._lock.acquire()
        await self.store.open()
        await self._recover()
        self.parts = parts = build_components(self.base, problems=self.problems, on_rules_changed=self.reload)
        self.base.committer.start()
        parts.decider.start()
        parts.worker.start()
        parts.outbox.start()
        if parts.watcher is not None:
            await parts.watcher.start()
        self._supervise()
        await self._serve_http(parts.app)
        await self._log_started()

    async def _recover(self) -> None:
        recovery = await self.store.recover(reason=RESTART_REASON, now=self.base.clock.now())
        if recovery.requeued_events or recovery.interrupted_runs:
            await log.awarning(
                "recovered after restart",
                requeued_events=recovery.requeued_events,
                interrupted_runs=recovery.interrupted_runs,
            )

    async def _serve_http(self, app: web.Application) -> None:
        # aiohttp's keep-alive timer runs from the connection's start and from each response until the next
        # request's headers are in: the header timeout for idle connections and slow (slowloris) headers alike.
        server = self.settings.server
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=server.header_timeout.total_seconds()
        )
        await self._runner.setup()
        host, port = server.host_port
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()

    async def _log_started(self) -> None:
        for warning in self.ruleset.warnings:
            await log.awarning("playbook warning", warning=warning)
        await log.ainfo(
            "serving",
            listen=self.settings.server.listen,
            instance=self.store.owner,
            rules=len(self.ruleset.rules),
            playbooks=len(self.ruleset.playbooks),
            dry_run=self.settings.dry_run,
        )

    def loops(self) -> dict[str, asyncio.Task[None]]:
        """The long-lived tasks by name, as the supervisor watches them."""
        parts = self.parts
        tasks = {**(parts.worker.tasks if parts else {})}
        named = {
            "group-commit": self.base.committer.task,
            "decider": parts.decider.task if parts else None,
            "outbox": parts.outbox.task if parts else None,
            "rules-watch": parts.watcher.task if parts and parts.watcher else None,
        }
        tasks.update({name: task for name, task in named.items() if task is not None})
        return tasks

    def _supervise(self) -> None:
        for name, task in self.loops().items():
            task.add_done_callback(functools.partial(self._loop_ended, name))

    def _loop_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        if task.cancelled():
            why = "cancelled"
        else:
            error = task.exception()
            why = f"{type(error).__name__}: {error}" if error is not None else "returned"
        self.dead_loops[name] = why
        log.error(
            "a loop ended while the daemon runs; shutting down to be restarted",
            loop=name,
            why=why,
            exc_info=task.exception() if not task.cancelled() else None,
        )
        self.faulted.set()

    def problems(self) -> list[str]:
        """Why the daemon is not ready, beyond the store and the rules: loops that ended."""
        return [f"loop {name} ended ({why})" for name, why in self.dead_loops.items()]

    async def reload(self) -> bool:
        """Reload rules and playbooks; an invalid set is refused and the old one kept."""
        now = self.base.clock.now()
        try:
            ruleset = load_rules(self.settings, self.registry)
        except FileProblems as exc:
            self.metrics.config_reloads.labels("failed").inc()
            self.reload_status.record(ok=False, now=now, problems=[str(p) for p in exc.problems])
            await log.aerror("reload refused, keeping the previous rules", problems=[str(p) for p in exc.problems])
            return False
        self.base.rules.current = ruleset
        self.metrics.config_reloads.labels("succeeded").inc()
        self.reload_status.record(ok=True, now=now)
        await log.ainfo("reloaded", rules=len(ruleset.rules), playbooks=len(ruleset.playbooks))
        return True

    async def stop(self) -> None:
        """Stop taking webhooks, let stored work drain within the grace period, then close."""
        self._stopping = True
        parts = self.parts
        if parts is not None and parts.watcher is not None:
            await parts.watcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.base.committer.stop()
        if parts is not None:
            await self._stop_engine(parts)
        await self.registry.close()
        await self.store.close()
        if self._lock is not None:
            self._lock.release()
        await log.ainfo("stopped")

    async def _stop_engine(self, parts: Components) -> None:
        await parts.decider.stop()
        await parts.worker.stop(grace=self.settings.server.shutdown_grace.total_seconds())
        # After the runs: their escalations are in the outbox, sent now or at restart.
        await parts.outbox.run_once()
        await parts.outbox.stop()
        await parts.http.close()


async def serve(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT (exit status 0) or until a loop ends unexpectedly (status 1)."""
    daemon = Daemon(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = asyncio.create_task(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await daemon.start()
    return await run_until_stopped(daemon, stop)


async def run_until_stopped(daemon: Daemon, stop: asyncio.Event) -> int:
    """Wait for a stop request or a loop's death, shut down, and return the process exit status."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(daemon.faulted.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    faulted = daemon.faulted.is_set()
    grace = daemon.settings.server.shutdown_grace.total_seconds()
    await log.ainfo("shutting down", grace_seconds=grace, dead_loops=daemon.dead_loops or None)
    await daemon.stop()
    return 1 if faulted else 0
