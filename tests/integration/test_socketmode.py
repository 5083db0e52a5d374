"""Socket Mode supervision: an envelope whose handling raises is logged with its traceback and counted, and the
client goes on serving the next envelopes on the same connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import SecretStr

from autoremedy.chatops.socketmode import FAILED, SocketMode
from tests.support.procs import wait_for
from tests.support.slack import SLACK_APP_TOKEN, FakeSlack


class Broken(Exception):
    pass


async def test_a_failing_envelope_is_logged_counted_and_the_client_goes_on(
    fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    failures: list[int] = []
    remembered: set[str] = set()
    handled: list[dict[str, Any]] = []

    async def remember(key: str) -> bool:
        if "store-down" in key:
            raise Broken("store unavailable")
        fresh = key not in remembered
        remembered.add(key)
        return fresh

    async def on_command(fields: Mapping[str, Any]) -> dict[str, str] | None:
        if fields.get("text") == "explode":
            raise Broken("a command nobody expected")
        return {"response_type": "ephemeral", "text": f"ok {fields.get('text')}"}

    async def on_interaction(payload: dict[str, Any]) -> None:
        if payload.get("explode"):
            raise Broken("an interaction nobody expected")
        handled.append(payload)

    client = SocketMode(
        app_token=SecretStr(SLACK_APP_TOKEN),
        base_url=fake_slack.api_url,
        on_command=on_command,
        on_interaction=on_interaction,
        remember=remember,
        on_failure=lambda: failures.append(1),
    )
    await client.start()
    try:
        await wait_for(lambda: bool(fake_slack.sockets), timeout=15, message="the client connects")

        async def acked(envelope_id: str) -> dict[str, Any]:
            return await wait_for(lambda: fake_slack.ack(envelope_id), timeout=15, message=f"ack of {envelope_id}")

        exploded = await acked(await fake_slack.send_envelope("slash_commands", {"text": "explode"}))
        assert exploded["payload"] == FAILED  # the caller is told, and the error counted
        await fake_slack.send_envelope("interactive", {"explode": True})
        await fake_slack.send_envelope("events_api", {}, envelope_id="store-down-1")
        await wait_for(lambda: len(failures) == 3, timeout=15, message="three failures counted")

        served = await acked(await fake_slack.send_envelope("slash_commands", {"text": "status"}))
        assert served["payload"]["text"] == "ok status"
        await fake_slack.send_envelope("interactive", {"type": "block_actions"})
        await wait_for(lambda: handled == [{"type": "block_actions"}], timeout=15, message="the next press served")
        assert fake_slack.socket_connections == 1  # the same connection all along
    finally:
        await client.close()
    logged: list[str] = []
    expected = ("a command nobody expected", "an interaction nobody expected", "store unavailable")

    def all_logged() -> bool:  # structlog's async methods log from a thread: wait for the lines
        logged.append(capsys.readouterr().out)
        return all(said in "".join(logged) for said in expected)

    await wait_for(all_logged, timeout=15, message="each failure logged")
    assert "".join(logged).count("Broken: ") == 3  # each with its traceback
