"""A real CrowdSec 1.4 Local API (``crowdsec -no-cs``: the LAPI alone, no agent) on a free loopback port.

See /work/shared/design/LOCAL-SERVICES.md. Everything lives in ``tmpdir``: ``config.yaml`` (own SQLite db,
data/config/hub dirs, no online client, no Prometheus, not daemonized, logs to stdout -> ``crowdsec.log``),
``watcher.yaml`` (the watcher machine's credentials) and ``cscli.yaml`` (a second machine, which ``cscli``
itself logs in as to list decisions).

Pitfalls pinned here:

- ``cscli machines add`` without ``-f`` writes the new machine's credentials over ``api.client.credentials_path``:
  always ``-f`` a file in ``tmpdir``.
- ``POST /v1/watchers/login`` answers 401 ``incorrect Username or Password`` unless the User-Agent is
  ``name/version`` with exactly one ``/`` (the LAPI log says ``bad user agent``); aiohttp's default
  ``Python/3.11 aiohttp/3.x`` has two. Use ``USER_AGENT``.
- ``GET /v1/decisions`` answers ``null`` (not ``[]``) when there is none.
- ``cscli decisions list`` hides decisions whose origin is not ``cscli``: pass ``-a``.
- ``cscli decisions list`` goes through the LAPI, logged in with ``api.client.credentials_path``; without that
  file it dies with ``loading api client: while reading yaml file: open ...: no such file or directory``.
- ``POST /v1/alerts`` with a field missing answers 500, not 400: build alerts with ``ban_alert``.

Binaries come from ``$CROWDSEC_BIN`` / ``$CSCLI_BIN`` or ``PATH`` (Debian package ``crowdsec``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from .ports import free_port
from .procs import ManagedProcess, ProcessNotReady

STARTUP_TIMEOUT_S = 30.0
CSCLI_TIMEOUT_S = 30.0
_PORT_ATTEMPTS = 3

#: A User-Agent the LAPI accepts for watcher login: ``name/version``, exactly one ``/``.
USER_AGENT = "autoremedy-tests/1.0"

#: Debian's /etc/crowdsec/profiles.yaml: alerts that carry no decisions get a 4 h ban on their IP.
_PROFILES = """\
name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
on_success: break
"""


def _binary(env_var: str, name: str) -> str:
    found = os.environ.get(env_var) or shutil.which(name)
    if not found:
        raise FileNotFoundError(
            f"{name} not on PATH (set ${env_var}); "
            "see scripts/install-system-deps.sh (apt-get install --no-install-recommends crowdsec)"
        )
    return found


def crowdsec_config(tmpdir: Path, port: int) -> dict[str, Any]:
    """A self-contained LAPI-only config rooted in ``tmpdir`` (modelled on Debian's /etc/crowdsec/config.yaml)."""
    config_dir, data_dir, hub_dir = tmpdir / "config", tmpdir / "data", tmpdir / "hub"
    return {
        "common": {"daemonize": False, "log_media": "stdout", "log_level": "info", "working_dir": str(tmpdir)},
        "config_paths": {
            "config_dir": f"{config_dir}/",
            "data_dir": f"{data_dir}/",
            "simulation_path": str(config_dir / "simulation.yaml"),
            "hub_dir": f"{hub_dir}/",
            "index_path": str(hub_dir / ".index.json"),
            "notification_dir": f"{config_dir}/notifications/",
            "plugin_dir": "/usr/lib/crowdsec/plugins/",
        },
        "cscli": {"output": "json", "color": "no"},
        "db_config": {
            "type": "sqlite",
            "db_path": str(data_dir / "crowdsec.db"),
            "use_wal": True,
            "log_level": "info",
            "flush": {"max_items": 5000, "max_age": "7d"},
        },
        "api": {
            "client": {"insecure_skip_verify": False, "credentials_path": str(tmpdir / "cscli.yaml")},
            "server": {
                "log_level": "info",
                "listen_uri": f"127.0.0.1:{port}",
                "profiles_path": str(config_dir / "profiles.yaml"),
                "trusted_ips": ["127.0.0.1", "::1"],
            },
        },
        "prometheus": {"enabled": False},
    }


def _write_config(tmpdir: Path, port: int) -> Path:
    for sub in ("config", "data", "hub"):
        (tmpdir / sub).mkdir(parents=True, exist_ok=True)
    (tmpdir / "config" / "profiles.yaml").write_text(_PROFILES)
    (tmpdir / "config" / "simulation.yaml").write_text("simulation: off\n")
    path = tmpdir / "config.yaml"
    path.write_text(yaml.safe_dump(crowdsec_config(tmpdir, port), sort_keys=False))
    return path


async def run_cscli(config: Path, *args: str, timeout_s: float = CSCLI_TIMEOUT_S) -> str:
    """``cscli -c config args...``; returns stdout, raises with stdout+stderr on a non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        _binary("CSCLI_BIN", "cscli"),
        "-c",
        str(config),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=config.parent,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(
            f"cscli {' '.join(args)} exited with {proc.returncode}\n"
            f"--- stdout ---\n{out.decode(errors='replace')}\n--- stderr ---\n{err.decode(errors='replace')}"
        )
    return out.decode()


def ban_alert(
    ip: str,
    *,
    duration: str = "1h",
    scenario: str = "autoremedy/test-ban",
    origin: str = "autoremedy",
    message: str | None = None,
) -> dict[str, Any]:
    """One alert for ``POST /v1/alerts`` (send a list of them) carrying a ban on ``ip``; every field the LAPI
    requires is set (a missing one gives 500). Expiry counts from ``stop_at``, so both are now."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "scenario": scenario,
        "scenario_hash": "",
        "scenario_version": "",
        "message": message or f"autoremedy test ban of {ip}",
        "events_count": 1,
        "start_at": now,
        "stop_at": now,
        "capacity": 0,
        "leakspeed": "0",
        "simulated": False,
        "events": [],
        "source": {"scope": "Ip", "value": ip, "ip": ip},
        "decisions": [
            {"duration": duration, "type": "ban", "scope": "Ip", "value": ip, "origin": origin, "scenario": scenario}
        ],
    }


@dataclass
class CrowdSecLapi:
    """A running LAPI with a registered watcher machine and bouncer key."""

    url: str
    machine_id: str
    password: str
    bouncer_key: str
    config_path: Path
    proc: ManagedProcess
    tmpdir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.tmpdir = self.config_path.parent

    def stop(self) -> int | None:
        return self.proc.stop()

    def is_running(self) -> bool:
        return self.proc.is_running()

    def log_tail(self, n: int = 40) -> str:
        return self.proc.log_tail(n)

    async def restart(self, *, deadline_s: float = STARTUP_TIMEOUT_S) -> None:
        """Stop the LAPI and start it again on the same port, config and database. It signs JWTs with a secret
        drawn at each start (unless ``CS_LAPI_SECRET`` is set), so every token issued before is now refused
        with 401 ``signature is invalid``: the real way to see a token go stale without waiting an hour."""
        self.proc.stop()
        env = {k: v for k, v in os.environ.items() if k != "CS_LAPI_SECRET"}
        self.proc = ManagedProcess(
            self.proc.argv, log_dir=self.tmpdir, name="crowdsec", cwd=self.tmpdir, env=env, base_url=self.url
        ).start()
        try:
            await self.proc.wait_http_ok(f"{self.url}/health", deadline_s)
        except BaseException:
            self.proc.stop()
            raise

    async def watcher_token(self) -> str:
        """Log in as the watcher (``POST /v1/watchers/login``) and return the JWT."""
        async with (
            aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http,
            http.post(
                f"{self.url}/v1/watchers/login", json={"machine_id": self.machine_id, "password": self.password}
            ) as resp,
        ):
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"watcher login: HTTP {resp.status} {body}\n{self.log_tail()}")
        token: str = body["token"]
        return token

    async def decisions(self, ip: str) -> list[dict[str, Any]]:
        """Active decisions on ``ip`` as a bouncer sees them (``GET /v1/decisions?ip=``); ``null`` -> ``[]``."""
        async with (
            aiohttp.ClientSession(headers={"User-Agent": USER_AGENT, "X-Api-Key": self.bouncer_key}) as http,
            http.get(f"{self.url}/v1/decisions", params={"ip": ip}) as resp,
        ):
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"GET /v1/decisions: HTTP {resp.status} {body}")
        return list(body or [])

    async def cscli_decisions(self) -> list[dict[str, Any]]:
        """``cscli decisions list -a -o json``: every active decision, whatever its origin (one entry per
        alert, each with its ``decisions``); ``null`` -> ``[]``."""
        out = await run_cscli(self.config_path, "decisions", "list", "-a", "-o", "json")
        return list(json.loads(out or "null") or [])


async def _start_lapi(tmpdir: Path, deadline_s: float) -> tuple[ManagedProcess, Path]:
    """Write the config and start the LAPI on a free port (retried if the port was taken meanwhile)."""
    binary = _binary("CROWDSEC_BIN", "crowdsec")
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        config = _write_config(tmpdir, port)
        proc = ManagedProcess(
            [binary, "-c", str(config), "-no-cs"],
            log_dir=tmpdir,
            name="crowdsec",
            cwd=tmpdir,
            base_url=f"http://127.0.0.1:{port}",
        ).start()
        try:
            await proc.wait_http_ok(f"{proc.base_url}/health", deadline_s)
        except ProcessNotReady as exc:
            proc.stop()
            if "address already in use" in exc.log_tail and attempt < _PORT_ATTEMPTS:
                continue
            raise
        except BaseException:
            proc.stop()
            raise
        return proc, config
    raise AssertionError("unreachable")  # pragma: no cover


async def start_crowdsec(
    tmpdir: Path,
    *,
    machine_id: str = "autoremedy-test",
    bouncer_name: str = "autoremedy-test-bouncer",
    deadline_s: float = STARTUP_TIMEOUT_S,
) -> CrowdSecLapi:
    """Start the LAPI in ``tmpdir``, wait for ``GET /health``, then register a watcher machine (credentials in
    ``tmpdir/watcher.yaml``), a machine for cscli itself, and a bouncer key. Stops it if anything fails."""
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    proc, config = await _start_lapi(tmpdir, deadline_s)
    try:
        password, bouncer_key = secrets.token_hex(16), secrets.token_hex(16)
        await run_cscli(
            config, "machines", "add", machine_id, "--password", password, "-f", str(tmpdir / "watcher.yaml")
        )
        await run_cscli(
            config, "machines", "add", "cscli", "--password", secrets.token_hex(16), "-f", str(tmpdir / "cscli.yaml")
        )
        await run_cscli(config, "bouncers", "add", bouncer_name, "-k", bouncer_key)
    except BaseException:
        proc.stop()
        raise
    assert proc.base_url is not None
    return CrowdSecLapi(
        url=proc.base_url,
        machine_id=machine_id,
        password=password,
        bouncer_key=bouncer_key,
        config_path=config,
        proc=proc,
    )


__all__ = [
    "USER_AGENT",
    "CrowdSecLapi",
    "ban_alert",
    "crowdsec_config",
    "run_cscli",
    "start_crowdsec",
]
