"""Throwaway PostgreSQL 15 servers (a primary, and streaming replicas of it) on free loopback ports.

See /work/shared/design/LOCAL-SERVICES.md. Each server lives in ``tmpdir/<name>/``: ``data/`` (the cluster,
Unix socket inside it), ``<name>.log`` (the server's output; ``<name>-1.log`` after a restart), ``initdb.log``
or ``basebackup.log``. Settings: ``fsync=off``, ``wal_level=replica``, ``max_wal_senders=10``,
``hot_standby=on``; trust auth for local and loopback, replication included. Only ``fsync`` is relaxed, so a
killed server (``kill9()``) keeps every committed transaction, as a real one would; only an OS crash could
lose data.

Why it looks the way it does:

- PostgreSQL refuses to run as root. Every PostgreSQL program runs in a user namespace where it is
  ``postgres`` while staying root on the host: ``unshare --user --map-user=postgres --map-group=postgres``.
  Not ``runuser -u postgres`` + ``chown``: pytest's ``tmp_path`` parents are ``0700 root``, so the real
  postgres user cannot reach a data dir in ``tmp_path``, and granting ``o+x`` on them does not hold - every
  pytest session that starts (a parallel run, another checkout) resets ``/tmp/pytest-of-root`` to ``0700``,
  and initdb then dies with ``PANIC: could not open file ".../global/pg_control": Permission denied``.
  Everything therefore stays in ``tmp_path``, owned by root, and pytest removes it as usual.
- ``unshare`` and ``setpriv`` exec (no intermediate process), so the pid ``ManagedProcess`` signals is the
  postmaster; ``setpriv --pdeathsig KILL`` makes the postmaster die with the test runner even when no cleanup
  code runs. (``runuser`` forks and waits: we would signal runuser, not the postmaster.)
- PostgreSQL children call ``setsid()``, so signalling the postmaster's process group does not reach them.
  ``kill9()`` SIGKILLs the postmaster and then every process whose cwd is the data dir (all of a server's
  processes chdir there), so a restart does not trip over "pre-existing shared memory block is still in use".
- ``pg_basebackup`` warns ``skipping special file "./.s.PGSQL.<port>"`` (the primary's socket is in its data
  dir): harmless.

Binaries come from ``$PG_BIN`` or ``/usr/lib/postgresql/15/bin`` (Debian package ``postgresql-15``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import asyncpg

from .ports import free_port
from .procs import ManagedProcess, ProcessNotReady, wait_for

STARTUP_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_PORT_ATTEMPTS = 3
_PG_USER = "postgres"
_MAX_SOCKET_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1

StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}

#: Appended to the primary's postgresql.conf; pg_basebackup copies it to replicas. Port, socket dir and
#: listen address are per server and passed on the command line instead.
_SERVER_SETTINGS = """
# --- autoremedy test harness ---
fsync = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '128MB'
hot_standby = on
"""

_PG_HBA = """\
# autoremedy test harness: trust everything local and on loopback, replication included
local   all             all                     trust
local   replication     all                     trust
host    all             all     127.0.0.1/32    trust
host    replication     all     127.0.0.1/32    trust
host    all             all     ::1/128         trust
host    replication     all     ::1/128         trust
"""


def pg_bin(program: str) -> str:
    path = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")) / program
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: apt-get install -y --no-install-recommends postgresql-15")
    return str(path)


def _as_postgres(argv: Sequence[str]) -> list[str]:
    """Run argv as ``postgres`` in a user namespace (root on the host); it dies with the thread that starts it."""
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None:
        raise FileNotFoundError("unshare and setpriv (util-linux) are needed to run PostgreSQL as root")
    return [
        unshare,
        "--user",
        f"--map-user={_PG_USER}",
        f"--map-group={_PG_USER}",
        "--",
        setpriv,
        "--pdeathsig",
        "KILL",
        "--",
        *argv,
    ]


def _env(home: Path) -> dict[str, str]:
    """The caller's environment without PG* variables (they would redirect the tools), HOME set to ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["HOME"] = str(home)
    return env


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return "<no log file>"


async def _run_as_postgres(argv: Sequence[str], *, log: Path, cwd: Path, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
    """Run a one-shot PostgreSQL program as postgres, output to ``log``; raise with the log tail on failure."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *_as_postgres(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=_env(cwd),
        )
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if rc != 0:
        raise RuntimeError(f"{Path(argv[0]).name} exited with {rc}\n--- {log} ---\n{_tail(log)}")


def _processes_in(data_dir: Path) -> list[int]:
    """PIDs of the processes whose cwd is ``data_dir``: a PostgreSQL server's postmaster and children."""
    target = str(data_dir.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd") == target:
                    pids.append(int(entry.name))
    return pids


def _kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class PostgresServer:
    """One PostgreSQL server: a data dir and a port it keeps across restarts."""

    def __init__(self, *, name: str, root: Path, port: int) -> None:
        self.name = name
        self.root = root
        self.data_dir = root / "data"
        self.port = port
        self._proc: ManagedProcess | None = None

    def __repr__(self) -> str:
        return f"<PostgresServer {self.name} port={self.port} running={self.is_running()}>"

    # -- addresses ---------------------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    async def connect(self, dbname: str = "postgres", *, timeout_s: float = 5.0) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn(dbname), timeout=timeout_s)

    async def fetchval(self, sql: str, *args: Any, dbname: str = "postgres") -> Any:
        """Run one query on a fresh connection and return the first column of the first row."""
        conn = await self.connect(dbname)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def create_database(self, name: str) -> str:
        quoted = '"' + name.replace('"', '""') + '"'
        conn = await self.connect()
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
        return self.dsn(name)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return _as_postgres(
            [
                pg_bin("postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                self._socket_dir(),
                "-c",
                "listen_addresses=127.0.0.1",
            ]
        )

    def _socket_dir(self) -> str:
        """The data dir, unless the socket path would pass the kernel's 107-byte limit (a long ``--basetemp``):
        then no Unix socket at all (PostgreSQL would refuse to start); everything here connects over TCP."""
        return str(self.data_dir) if len(f"{self.data_dir}/.s.PGSQL.{self.port}") <= _MAX_SOCKET_PATH else ""

    async def start(self, *, deadline_s: float = STARTUP_TIMEOUT_S) -> None:
        """Start the server (same data dir, same port) and wait until it accepts connections."""
        if self.is_running():
            raise RuntimeError(f"{self!r} already running")
        self._proc = ManagedProcess(
            self._argv(),
            log_dir=self.root,
            name=self.name,
            cwd=self.data_dir,
            env=_env(self.root),
            die_with_parent=False,  # _as_postgres sets the parent-death signal itself, after the uid switch
        ).start()
        try:
            await self.wait_ready(deadline_s=deadline_s)
        except BaseException:
            self.kill9()
            raise

    async def wait_ready(self, *, deadline_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until ``SELECT 1`` works; raise ``ProcessNotReady`` (with the log) if the server exits first."""
        last: list[str] = ["no attempt"]

        async def accepts() -> bool:
            if not self.is_running():
                proc = self._require_proc()
                raise ProcessNotReady(f"{self.name} exited with {proc.returncode}", log_tail=self.log_tail())
            try:
                return bool(await self.fetchval("SELECT 1") == 1)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                last[0] = f"{type(exc).__name__}: {exc}"
                return False

        try:
            await wait_for(accepts, timeout=deadline_s, interval=0.02, message=lambda: f"{self.name}: {last[0]}")
        except AssertionError as exc:
            raise ProcessNotReady(str(exc), log_tail=self.log_tail()) from None

    def stop(self, mode: StopMode = "fast", *, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """``pg_ctl stop -m mode`` without pg_ctl: signal the postmaster and wait for it to exit.

        Past ``timeout_s`` the server is killed. Idempotent; returns the postmaster's exit status.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.is_running():
            proc.send_signal(_STOP_SIGNALS[mode])
            deadline = time.monotonic() + timeout_s
            while proc.is_running() and time.monotonic() < deadline:
                time.sleep(0.005)
        if proc.is_running():
            return self.kill9()
        _kill_all(_processes_in(self.data_dir))  # normally none: the postmaster waits for its children
        return proc.stop()

    def kill9(self) -> int | None:
        """Crash the server: SIGKILL the postmaster and every process of this server (they setsid())."""
        children = _processes_in(self.data_dir)
        rc = self._proc.kill9() if self._proc is not None else None
        _kill_all(children)
        deadline = time.monotonic() + 10.0
        while (left := _processes_in(self.data_dir)) and time.monotonic() < deadline:
            _kill_all(left)
            time.sleep(0.005)
        return rc

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    def pids(self) -> list[int]:
        """Every live process of this server (postmaster and children)."""
        return _processes_in(self.data_dir)

    def log_tail(self, n: int = 40) -> str:
        return self._proc.log_tail(n) if self._proc is not None else "<never started>"

    def _require_proc(self) -> ManagedProcess:
        if self._proc is None:
            raise RuntimeError(f"{self.name} never started")
        return self._proc

    # -- replication ---------------------------------------------------------------------------------------

    async def is_in_recovery(self) -> bool:
        return bool(await self.fetchval("SELECT pg_is_in_recovery()"))

    async def is_streaming(self) -> bool:
        """In recovery, with a WAL receiver streaming from the primary."""
        return bool(
            await self.fetchval(
                "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')"
            )
        )

    async def wait_caught_up(self, primary: PostgresServer, *, deadline_s: float = 10.0) -> None:
        """Wait until this replica has replayed everything the primary had written when called."""
        target = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
        seen: list[Any] = [None]

        async def replayed() -> bool:
            conn = await self.connect()
            try:
                row = await conn.fetchrow(
                    "SELECT pg_last_wal_replay_lsn()::text AS lsn,"
                    " pg_last_wal_replay_lsn() >= $1::text::pg_lsn AS done",
                    target,
                )
            finally:
                await conn.close()
            seen[0] = row["lsn"]
            return bool(row["done"])

        await wait_for(
            replayed,
            timeout=deadline_s,
            interval=0.01,
            message=lambda: f"{self.name} replayed {seen[0]}, primary at {target}\n{self.log_tail()}",
        )

    async def promote(self) -> None:
        """``SELECT pg_promote(wait => true)``: leave recovery and accept writes."""
        if not await self.fetchval("SELECT pg_promote(wait => true)"):
            raise RuntimeError(f"{self.name}: pg_promote returned false\n{self.log_tail()}")


async def _start_on_free_port(server: PostgresServer, deadline_s: float) -> None:
    """Start ``server``; if its port was taken meanwhile, retry on another free port."""
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        try:
            await server.start(deadline_s=deadline_s)
            return
        except ProcessNotReady as exc:
            if "Address already in use" in exc.log_tail and attempt < _PORT_ATTEMPTS:
                server.port = free_port()
                continue
            raise


async def start_postgres(tmpdir: Path, *, name: str = "pg", deadline_s: float = STARTUP_TIMEOUT_S) -> PostgresServer:
    """initdb a new cluster in ``tmpdir/name/data`` and start it on a free port; ready to connect."""
    root = Path(tmpdir) / name
    root.mkdir(parents=True)
    server = PostgresServer(name=name, root=root, port=free_port())
    await _run_as_postgres(
        [
            pg_bin("initdb"),
            "-D",
            str(server.data_dir),
            "-U",
            _PG_USER,
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            "--encoding=UTF8",
            "--locale=C",
        ],
        log=root / "initdb.log",
        cwd=root,
    )
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(_SERVER_SETTINGS)
    (server.data_dir / "pg_hba.conf").write_text(_PG_HBA)
    await _start_on_free_port(server, deadline_s)
    return server


async def start_replica(
    primary: PostgresServer, tmpdir: Path, *, name: str = "replica", deadline_s: float = STARTUP_TIMEOUT_S
) -> PostgresServer:
    """``pg_basebackup -R`` from ``primary`` into ``tmpdir/name/data``, start it on a free port, and wait
    until it is in recovery and streaming from the primary."""
    root = Path(tmpdir) / name
    root.mkdir(parents=True)
    replica = PostgresServer(name=name, root=root, port=free_port())
    await _run_as_postgres(
        [
            pg_bin("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            _PG_USER,
            "-D",
            str(replica.data_dir),
            "-R",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        ],
        log=root / "basebackup.log",
        cwd=root,
    )
    await _start_on_free_port(replica, deadline_s)
    try:
        await wait_for(
            replica.is_streaming,
            timeout=deadline_s,
            interval=0.02,
            message=lambda: f"{name} never streamed from {primary.name}\n--- {name} log ---\n{replica.log_tail()}",
        )
    except BaseException:
        replica.kill9()
        raise
    return replica


class PostgresPair(NamedTuple):
    primary: PostgresServer
    replica: PostgresServer


__all__ = [
    "PostgresPair",
    "PostgresServer",
    "pg_bin",
    "start_postgres",
    "start_replica",
]
