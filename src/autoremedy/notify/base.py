"""A channel sends one notification and says sent, retry (429, 5xx, unreachable) or give up (other 4xx)."""

from __future__ import annotations

from typing import Protocol

from autoremedy.models.notifications import Notification, SendResult


class Channel(Protocol):
    name: str

    async def send(self, notification: Notification) -> SendResult: ...

    async def close(self) -> None: ...
