"""External processes owned by a test, and deadline-based waiting.

Every ``ManagedProcess`` runs in its own process group (``start_new_session=True``) so that ``stop()`` and
``kill9()`` reach it and anything it forks, and nothing else. Output goes to a log file in a directory the
test owns; ``log_tail()`` is attached to every error so a failed start explains itself.

Waiting is always "poll a condition until a ``time.monotonic()`` deadline", never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import os
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar, overload

import aiohttp

T = TypeVar("T")

#: Processes started and not yet stopped; stopped at interpreter exit as a last resort.
_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


class ProcessNotReady(RuntimeError):
    """A managed process exited early or did not become ready before its deadline."""

    def __init__(self, message: str, *, log_tail: str) -> None:
        super().__init__(f"{message}\n--- log tail ---\n{log_tail}")
        self.log_tail = log_tail


class ManagedProcess:
    """A command started in its own process group, with output captured to ``log_dir/<name>.log``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_dir: Path,
        name: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        base_url: str | None = None,
        die_with_parent: bool = True,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv: list[str] = [str(a) for a in argv]
        self.name: str = name or Path(self.argv[0]).name
        self.log_dir = Path(log_dir)
        self.log_path: Path = self._unique_log_path()
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        #: Where the service answers, e.g. ``http://127.0.0.1:41234`` (set by whoever knows the port).
        self.base_url: str | None = base_url
        #: Wrap the command in ``setpriv --pdeathsig KILL`` (if available), so the process dies even when
        #: the test runner itself is SIGKILLed/SIGTERMed and no cleanup code runs. The kernel sends the
        #: signal when the *thread* that started it exits: start from the main thread / event loop thread,
        #: not from a short-lived worker thread (or pass ``die_with_parent=False``).
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None

    def _unique_log_path(self) -> Path:
        candidate = self.log_dir / f"{self.name}.log"
        n = 1
        while candidate.exists():
            candidate = self.log_dir / f"{self.name}-{n}.log"
            n += 1
        return candidate

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():  # another process with this name started since __init__
            self.log_path = self._unique_log_path()
        argv = self.argv
        setpriv = shutil.which("setpriv") if self.die_with_parent else None
        if setpriv:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]  # execs: same pid, same process group
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        return self._require_popen().pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (negative: killed by that signal), else None."""
        return None if self._popen is None else self._popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to ``timeout`` seconds, then SIGKILL it. Idempotent."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                popen.wait()
        _LIVE.discard(self)
        return popen.returncode

    def send_signal(self, sig: signal.Signals) -> None:
        """Send sig to the process itself (not its group), e.g. SIGHUP to reload."""
        self._require_popen().send_signal(sig)

    def kill9(self) -> int | None:
        """SIGKILL the process group at once (simulates a crash) and reap the process."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal_group(signal.SIGKILL)
            popen.wait()
        _LIVE.discard(self)
        return popen.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id equals the pid (start_new_session). Only signalled while the leader is unreaped,
        # so the id cannot have been reused by an unrelated process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def _require_popen(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} not started")
        return self._popen

    # -- diagnostics -----------------------------------------------------------------------------------

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the process log (decoded leniently)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return "<no log file>"
        lines = data.decode("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def __repr__(self) -> str:
        pid = self._popen.pid if self._popen else None
        return f"<ManagedProcess {self.name} pid={pid} rc={self.returncode} url={self.base_url}>"

    # -- readiness -------------------------------------------------------------------------------------

    async def wait_http_ok(self, url: str, deadline_s: float = 30.0) -> None:
        """Poll ``GET url`` until it answers 200, within ``deadline_s`` seconds from now.

        Raises ``ProcessNotReady`` (with the log tail) if the process exits first or the deadline passes.
        Asynchronous so that in-process servers on the same event loop (exporters, receivers) keep serving
        while we wait.
        """
        deadline = time.monotonic() + deadline_s
        last = "no attempt"
        async with aiohttp.ClientSession() as session:
            while True:
                self._raise_if_exited(f"while waiting for {url}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProcessNotReady(
                        f"{self.name} (pid {self.pid}): {url} not 200 within {deadline_s}s; last: {last}",
                        log_tail=self.log_tail(),
                    )
                try:
                    timeout = aiohttp.ClientTimeout(total=max(0.05, min(1.0, remaining)))
                    async with session.get(url, timeout=timeout) as resp:
                        if resp.status == 200:
                            return
                        last = f"HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _raise_if_exited(self, context: str) -> None:
        rc = self._require_popen().poll()
        if rc is not None:
            _LIVE.discard(self)
            raise ProcessNotReady(f"{self.name} (pid {self.pid}) exited with {rc} {context}", log_tail=self.log_tail())


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    interval: float = ...,
    message: str | Callable[[], str],
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float,  # noqa: ASYNC109
    interval: float = ...,
    message: str | Callable[[], str],
) -> T: ...


async def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,  # noqa: ASYNC109
    interval: float = 0.02,
    message: str | Callable[[], str],
) -> Any:
    """Evaluate ``predicate`` (sync or async) until it returns something truthy, and return that.

    Raises ``AssertionError(message)`` once ``timeout`` seconds have passed; ``message`` may be a callable,
    evaluated only then (e.g. to include what was observed). Exceptions from the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (not true within {timeout}s)")
        await asyncio.sleep(min(interval, remaining))


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5.0)
