"""Models built without validation (models/trusted.py) are the models validation would build, field for field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, PrivateAttr

from autoremedy.models.events import AlertEvent, EventState, NewEvent, events_from_payload
from autoremedy.models.trusted import trusted
from autoremedy.models.webhook import WebhookLimits, parse_webhook
from autoremedy.store.rows import event_from_row

BODY = {
    "version": "4",
    "receiver": "autoremedy",
    "status": "firing",
    "groupKey": '{}:{alertname="DiskFull"}',
    "externalURL": "http://am:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db1"},
            "annotations": {"summary": "disk full"},
            "startsAt": "2026-11-27T00:15:01.179+02:00",
            "endsAt": "2026-11-27T01:00:00Z",
            "generatorURL": "http://prom:9090/graph",
            "fingerprint": "2211ebba9d7bd2f0",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DiskFull", "instance": "db2"},
            "startsAt": "2026-11-26T22:15:01Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "3322ebba9d7bd2f0",
        },
    ],
}


def test_events_from_a_webhook_are_the_events_validation_would_build() -> None:
    events = events_from_payload(parse_webhook(json.dumps(BODY).encode(), WebhookLimits()).payload)
    assert events == [NewEvent.model_validate(event.model_dump()) for event in events]
    assert [(e.starts_at, e.ends_at) for e in events] == [
        ("2026-11-26T22:15:01.179000Z", "2026-11-27T01:00:00.000000Z"),
        ("2026-11-26T22:15:01.000000Z", None),
    ]
    assert events[0].model_fields_set == set(NewEvent.model_fields)


ROW: dict[str, Any] = {
    "id": 7,
    "fingerprint": "2211ebba9d7bd2f0",
    "status": "firing",
    "starts_at": "2026-11-26T22:15:01.179000Z",
    "ends_at": None,
    "labels": '{"alertname":"DiskFull","instance":"db1"}',
    "annotations": "{}",
    "generator_url": "http://prom:9090/graph",
    "receiver": "autoremedy",
    "external_url": "http://am:9093",
    "group_key": "{}",
    "received_at": "2026-11-26T22:15:02.000001+00:00",
    "deliveries": 2,
    "state": "processing",
}


@pytest.mark.parametrize(
    "received_at",
    ["2026-11-26T22:15:02.000001+00:00", datetime(2026, 11, 26, 22, 15, 2, 1, tzinfo=UTC)],
    ids=["sqlite-text", "postgres-timestamptz"],
)
def test_an_event_read_from_a_row_is_the_event_validation_would_build(received_at: object) -> None:
    event = event_from_row({**ROW, "received_at": received_at})
    validated = AlertEvent.model_validate(
        {**ROW, "labels": json.loads(ROW["labels"]), "annotations": {}, "received_at": received_at}
    )
    assert event == validated
    assert event.state is EventState.PROCESSING and event.labels == {"alertname": "DiskFull", "instance": "db1"}
    assert event.template_view() == validated.template_view()


class _WithPrivate(BaseModel):
    value: int
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)


def test_a_model_that_needs_more_than_its_fields_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot be built without validation"):
        trusted(_WithPrivate, {"value": 1})
