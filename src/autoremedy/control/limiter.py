"""Failed sign-ins per client address: a password (a console user, basic auth on the API) or a token cannot be
guessed at network speed.

After `max_failures` failures from one address within `window`, that address is refused (429 with Retry-After)
until its oldest failure leaves the window; a success does not wipe the count, so a client holding one weak
credential (the Alertmanager token) cannot interleave it to keep guessing another. Counted in memory, per
instance: with several replicas an attacker gets each replica's allowance (docs/security.md). At most
`max_clients` addresses are remembered; the longest-known is forgotten first.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from autoremedy.config.settings_server import AuthSettings


class FailedSignIns:
    def __init__(self, *, max_failures: int, window: timedelta, max_clients: int = 10_000) -> None:
        self._max = max_failures
        self._window = window
        self._max_clients = max_clients
        self._failures: dict[str, deque[datetime]] = {}

    @classmethod
    def for_auth(cls, auth: AuthSettings) -> FailedSignIns:
        """The limits server.auth sets (max_failures within failure_window)."""
        return cls(max_failures=auth.max_failures, window=auth.failure_window)

    def retry_after(self, client: str, now: datetime) -> float | None:
        """Seconds until this client may try again, or None: it may now."""
        times = self._failures.get(client)
        if times is None:
            return None
        self._expire(client, times, now)
        if len(times) < self._max:
            return None
        return max(1.0, (times[0] + self._window - now).total_seconds())

    def failed(self, client: str, now: datetime) -> None:
        times = self._failures.setdefault(client, deque())
        times.append(now)
        self._expire(client, times, now)
        while len(self._failures) > self._max_clients:
            del self._failures[next(iter(self._failures))]

    def _expire(self, client: str, times: deque[datetime], now: datetime) -> None:
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            self._failures.pop(client, None)
