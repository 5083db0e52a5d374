"""Webhook bodies to alert events, big ones off the event loop, so /healthz and other webhooks are answered meanwhile.

Two things would otherwise hold the loop for a 4 MiB body of 18,000 alerts (bench/healthz_during_big_webhook.py):
- the parsing and validation themselves (about half a second of CPU): done in a thread, alert by alert, so the
  interpreter hands the GIL back to the loop between alerts;
- the cycle collector: the body becomes some 200,000 container objects, parsed, validated, then turned into rows by
  the store, which trigger full collections that traverse every object while holding the GIL (100-150 ms each, two
  or three per body). Those objects are acyclic and freed by reference counting, so the collector is paused from
  the parse to the commit of a big body (`collector_paused`).

What cannot be split is the JSON parse of the whole body (tens of milliseconds for 4 MiB).
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from autoremedy.models.events import NewEvent, events_from_payload
from autoremedy.models.webhook import ParsedWebhook, WebhookLimits, parse_webhook

BIG_BODY = 64 * 1024
"""Bodies larger than this (some 250 alerts) are parsed in a thread; smaller ones are quicker on the loop."""


def is_big(body: bytes) -> bool:
    return len(body) > BIG_BODY


async def events_from_body(body: bytes, limits: WebhookLimits) -> tuple[list[NewEvent], ParsedWebhook]:
    """The events of the body's valid alerts, and the parse (the other alerts' problems, where each event was);
    `InvalidWebhook` when the body is not a webhook at all."""
    if not is_big(body):
        return _events(body, limits)
    return await asyncio.to_thread(_events, body, limits)


def _events(body: bytes, limits: WebhookLimits) -> tuple[list[NewEvent], ParsedWebhook]:
    parsed = parse_webhook(body, limits)
    return events_from_payload(parsed.payload), parsed


_pausing = threading.Lock()
_pauses = 0
_paused_by_us = False


@contextmanager
def collector_paused(pause: bool = True) -> Iterator[None]:
    """The cycle collector off while anyone is inside (several big bodies may be in flight at once), then back to
    how it was. Reference counting goes on freeing objects meanwhile; only cycles wait."""
    if not pause:
        yield
        return
    global _pauses, _paused_by_us  # noqa: PLW0603 - one collector per process, so one count per process
    with _pausing:
        if _pauses == 0:
            _paused_by_us = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pausing:
            _pauses -= 1
            if _pauses == 0 and _paused_by_us:
                gc.enable()
