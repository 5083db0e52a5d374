"""The CLI's client for the daemon's HTTP API, and how it prints runs."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from autoremedy.config.settings import AuthSettings, ScopeName, Settings

TIMEOUT_SECONDS = 10
TOKEN_ENV = "AUTOREMEDY_TOKEN"


class ApiError(Exception):
    pass


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    authorization: str | None

    @classmethod
    def from_settings(cls, settings: Settings, *, url: str | None, scope: ScopeName = "read") -> ApiClient:
        """A client for commands that need `scope`: its credential is $AUTOREMEDY_TOKEN, else the first one in
        the config that has the scope (control commands need a token with `control`)."""
        host, port = settings.server.host_port
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        base = url or os.environ.get("AUTOREMEDY_URL") or f"http://{host}:{port}"
        return cls(base.rstrip("/"), _authorization(settings, scope))

    def list_runs(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({k: v for k, v in {"status": status, "limit": limit}.items() if v})
        runs: list[dict[str, Any]] = self._get(f"/api/v1/runs?{query}")["runs"]
        return runs

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._get(f"/api/v1/runs/{urllib.parse.quote(run_id)}")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        return self._get(path, data=data)

    def status(self) -> dict[str, Any]:
        return self._get("/api/v1/status")

    def _get(self, path: str, *, data: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.base_url + path, data=data, method="POST" if data else "GET")
        request.add_header("Content-Type", "application/json")
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{exc.code}: {exc.read().decode('utf-8', 'replace')}") from exc
        except OSError as exc:
            raise ApiError(f"cannot reach {self.base_url}: {exc}") from exc


def _authorization(settings: Settings, scope: ScopeName) -> str | None:
    token = os.environ.get(TOKEN_ENV)
    if token:
        return f"Bearer {token}"
    auth = settings.server.auth
    found = _scoped_credential(auth, scope)
    if found is not None or not auth.has_credentials:
        return found
    if scope == "control":
        raise ApiError(
            f"this command needs a token with the control scope: set {TOKEN_ENV}, or add one to "
            "server.auth.tokens (bearer_tokens and basic_users may only ingest and read)"
        )
    if auth.bearer_tokens:
        return f"Bearer {auth.bearer_tokens[0].get_secret_value()}"
    legacy = next(iter(auth.basic_users.items()), None)
    return _basic(legacy[0], legacy[1].get_secret_value()) if legacy is not None else None


def _scoped_credential(auth: AuthSettings, scope: ScopeName) -> str | None:
    """The first `tokens`, then `users` entry of the config that has the scope, as an Authorization header."""
    token = next((t.token for t in auth.tokens if scope in t.scopes and t.token is not None), None)
    if token is not None:
        return f"Bearer {token.get_secret_value()}"
    user = next((u for u in auth.users if scope in u.scopes and u.password is not None), None)
    if user is not None and user.password is not None:
        return _basic(user.name, user.password.get_secret_value())
    return None


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def print_runs(runs: list[dict[str, Any]]) -> None:
    columns = ("id", "status", "rule", "playbook", "target", "created_at", "reason")
    rows = [[str(run.get(c) or "") for c in columns] for run in runs]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(no runs)")


def print_run(run: dict[str, Any]) -> None:
    for key in (
        "id",
        "status",
        "reason",
        "rule",
        "playbook",
        "target",
        "fingerprint",
        "alert_status",
        "dry_run",
        "created_at",
        "started_at",
        "finished_at",
    ):
        print(f"{key + ':':14} {run.get(key)}")
    print("steps:")
    for step in run.get("steps", []):
        label = step.get("name") or step["action"]
        print(
            f"  [{step['index']}] {label} ({step['action']}): {step['outcome']}, attempts {step['attempts']}"
            + (f", error: {step['error']}" if step.get("error") else "")
        )
        print(f"      with: {json.dumps(step['inputs'])}")
    print("audit:")
    for entry in run.get("audit", []):
        print(f"  {entry['at']}  {entry['kind']}: {entry['message']}")


def print_status(status: dict[str, Any]) -> None:
    breaker = status["breaker"]
    state = f"OPEN since {breaker['opened_at']}" if breaker["open"] else "closed"
    print(f"queue depth:     {status['queue_depth']} (oldest waiting {status['queue_oldest_age_seconds']:g}s)")
    runs = ", ".join(f"{name} {count}" for name, count in sorted(status["runs"].items())) or "none"
    print(f"active runs:     {runs}")
    print(f"circuit breaker: {state}")
    paused = status["paused"]
    print("paused:          " + ("; ".join(f"{p['scope']} by {p['by']} ({p['reason']})" for p in paused) or "nothing"))
    dead = status["dead_events"]
    print(f"dead-lettered:   {dead['count']} event(s) could not be decided")
    for event in dead["latest"]:
        name = event["alertname"] or "?"
        print(f"  event {event['event_id']} {name} {event['fingerprint']} at {event['dead_at']}: {event['error']}")
    _print_config_status(status.get("config") or {})


def _print_config_status(config: dict[str, Any]) -> None:
    if not config:
        return
    if config["last_reload_success"]:
        print(f"rules loaded:    {config['last_success_at']}")
        return
    refused, kept = config["last_reload_at"], config["last_success_at"]
    print(f"rules reload:    REFUSED at {refused}; still running the set loaded at {kept}")
    for problem in config["problems"]:
        print(f"  {problem}")
