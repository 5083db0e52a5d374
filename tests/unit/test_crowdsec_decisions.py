"""Table-driven tests of the pure CrowdSec decisions: ban values, the allowlist and prefix rules, the alert that
carries a ban, Go durations, and which existing decisions count as "already banned"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoremedy.decide.crowdsec import (
    ban_alert,
    ban_refusal,
    decisions_on,
    go_duration,
    parse_allowlist,
    parse_go_duration,
    parse_target,
    token_lifetime,
)

# (written, scope, value sent to the LAPI)
TARGETS = [
    pytest.param("203.0.113.7", "Ip", "203.0.113.7", id="ipv4"),
    pytest.param(" 203.0.113.7 ", "Ip", "203.0.113.7", id="spaces"),
    pytest.param("203.0.113.7/32", "Ip", "203.0.113.7", id="ipv4-host-cidr"),
    pytest.param("203.0.113.0/24", "Range", "203.0.113.0/24", id="ipv4-range"),
    pytest.param("2001:DB8:0::1", "Ip", "2001:db8::1", id="ipv6-compressed"),
    pytest.param("2001:db8::/48", "Range", "2001:db8::/48", id="ipv6-range"),
    pytest.param("::ffff:203.0.113.7", "Ip", "203.0.113.7", id="ipv4-mapped"),
]


@pytest.mark.parametrize(("text", "scope", "value"), TARGETS)
def test_parse_target(text: str, scope: str, value: str) -> None:
    target = parse_target(text)
    assert (target.scope, target.value) == (scope, value)
    assert target.query == ({"ip": value} if scope == "Ip" else {"range": value})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("", "the ip input is empty", id="empty"),
        pytest.param("example.com", "'example.com' is not an IP address or CIDR", id="name"),
        pytest.param("203.0.113.256", "is not an IP address or CIDR", id="octet"),
        pytest.param("203.0.113.7/24", "has host bits set: write the network, 203.0.113.0/24", id="host-bits"),
        pytest.param("::ffff:0:0/112", "IPv4-mapped IPv6 range: write it as an IPv4 range", id="mapped-range"),
        pytest.param("fe80::1%eth0", "is a scoped IPv6 address", id="scoped-link-local"),
        pytest.param("2001:db8::7%eth0", "is a scoped IPv6 address", id="scoped-global"),
        pytest.param("2001:db8::7%25eth0", "is a scoped IPv6 address", id="scoped-url-encoded"),
    ],
)
def test_parse_target_refuses(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_target(text)


ALLOW = parse_allowlist(["198.51.100.64/26", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        pytest.param("203.0.113.7", None, id="public-ipv4"),
        pytest.param("203.0.113.0/24", None, id="at-max-prefix"),
        pytest.param("2001:db8:1::/48", None, id="ipv6-at-max-prefix"),
        pytest.param("2001:db8:1:2::/64", None, id="ipv6-subnet"),
        pytest.param("198.51.100.63", None, id="just-outside-configured"),
        pytest.param("127.0.0.1", "127.0.0.1 is in 127.0.0.0/8, loopback: never banned", id="loopback"),
        pytest.param("10.1.2.3", "10.1.2.3 is in 10.0.0.0/8, private (RFC 1918): never banned", id="private"),
        pytest.param("192.168.0.0/16", "192.168.0.0/16 is in 192.168.0.0/16, private (RFC 1918)", id="private-16"),
        pytest.param("10.0.0.0/7", "10.0.0.0/7 is wider than /24 (crowdsec.max_prefix)", id="wider-first"),
        pytest.param("11.0.0.0/24", None, id="next-to-private"),
        pytest.param("fe80::1", "fe80::1 is in fe80::/10, link-local", id="ipv6-link-local"),
        pytest.param("::1", "::1 is in ::1/128, loopback", id="ipv6-loopback"),
        pytest.param("::", ":: is in ::/128, unspecified", id="ipv6-unspecified"),
        pytest.param("::2", "::2 is in ::/8, reserved (IETF)", id="ipv6-reserved"),
        pytest.param("224.0.0.1", "224.0.0.1 is in 224.0.0.0/4, multicast", id="multicast"),
        pytest.param("240.0.0.1", "240.0.0.1 is in 240.0.0.0/4, reserved (and broadcast)", id="reserved"),
        pytest.param("0.0.0.0", "0.0.0.0 is in 0.0.0.0/8, unspecified", id="unspecified"),
        pytest.param("198.51.100.65", "198.51.100.65 is in 198.51.100.64/26, in crowdsec.allowlist", id="configured"),
        pytest.param("198.51.100.0/24", "198.51.100.0/24 overlaps 198.51.100.64/26", id="overlaps-configured"),
        pytest.param("2001:db8:ffff::1", "is in 2001:db8:ffff::/48, in crowdsec.allowlist", id="configured-ipv6"),
        pytest.param("203.0.112.0/23", "203.0.112.0/23 is wider than /24 (crowdsec.max_prefix)", id="wide-ipv4"),
        pytest.param("2001:db8::/47", "is wider than /48 (crowdsec.max_prefix_v6)", id="wide-ipv6"),
        pytest.param("::/0", "::/0 is wider than /48 (crowdsec.max_prefix_v6)", id="all-ipv6"),
        pytest.param("2002:a00:1::1", "is 6to4 for 10.0.0.1/32, which is in 10.0.0.0/8", id="6to4-private"),
        pytest.param("2002:7f00:1::/48", "is 6to4 for 127.0.0.1/32, which is in 127.0.0.0/8", id="6to4-loopback"),
        pytest.param("2002:a9fe:a9fe::1", "6to4 for 169.254.169.254/32", id="6to4-link-local"),
        pytest.param("2002:c633:6441::1", "6to4 for 198.51.100.65/32, which is in 198.51.100.64/26", id="6to4-config"),
        pytest.param("2002:c0a8::/32", "6to4 for 192.168.0.0/16, which is in 192.168.0.0/16", id="6to4-range"),
        pytest.param("2002:cb00:7107::1", None, id="6to4-public"),
        pytest.param("2002:cb00:7107::/48", None, id="6to4-public-48"),
        pytest.param("64:ff9b::a01:203", "is in ::/8, reserved (IETF)", id="nat64-reserved"),
    ],
)
def test_ban_refusal(text: str, refusal: str | None) -> None:
    found = ban_refusal(parse_target(text), allowlist=ALLOW, max_prefix_v4=24, max_prefix_v6=48)
    if refusal is None:
        assert found is None
    else:
        assert found is not None and refusal in found


def test_max_prefix_is_configurable() -> None:
    target = parse_target("203.0.113.0/24")
    assert ban_refusal(target, allowlist=(), max_prefix_v4=16, max_prefix_v6=48) is None
    assert ban_refusal(target, allowlist=(), max_prefix_v4=28, max_prefix_v6=48) == (
        "203.0.113.0/24 is wider than /28 (crowdsec.max_prefix)"
    )


@pytest.mark.parametrize(
    ("duration", "go"),
    [
        (timedelta(hours=4), "4h"),
        (timedelta(days=1), "24h"),
        (timedelta(weeks=1), "168h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(minutes=2, milliseconds=500), "2m500ms"),
        (timedelta(seconds=90), "1m30s"),
    ],
)
def test_go_duration(duration: timedelta, go: str) -> None:
    assert go_duration(duration) == go
    assert parse_go_duration(go) == duration


def test_go_duration_refuses_zero() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        go_duration(timedelta(0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3h59m59.608772543s", timedelta(hours=3, minutes=59, seconds=59.608772543)),
        ("59m59.5s", timedelta(minutes=59, seconds=59.5)),
        ("-1h2m", -timedelta(hours=1, minutes=2)),
        ("1.5h", timedelta(minutes=90)),
        ("1d", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_parse_go_duration(text: str, expected: timedelta | None) -> None:
    assert parse_go_duration(text) == expected


def test_ban_alert_has_every_field_the_lapi_requires() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    alert = ban_alert(
        parse_target("2001:db8::/48"),
        duration=timedelta(days=1),
        reason=" too \n many   requests ",
        note="ar r.1",
        now=now,
    )
    assert alert == {
        "scenario": "too many requests",
        "scenario_hash": "",
        "scenario_version": "",
        "message": "ar r.1: too many requests",
        "events_count": 1,
        "start_at": "2026-01-02T03:04:05Z",
        "stop_at": "2026-01-02T03:04:05Z",
        "capacity": 0,
        "leakspeed": "0",
        "simulated": False,
        "events": [],
        "source": {"scope": "Range", "value": "2001:db8::/48", "range": "2001:db8::/48"},
        "decisions": [
            {
                "duration": "24h",
                "type": "ban",
                "scope": "Range",
                "value": "2001:db8::/48",
                "origin": "autoremedy",
                "scenario": "too many requests",
            }
        ],
    }


def test_a_long_reason_is_shortened() -> None:
    alert = ban_alert(
        parse_target("203.0.113.7"), duration=timedelta(hours=1), reason="x" * 1000, note="n", now=datetime.now(UTC)
    )
    assert len(alert["scenario"]) == 256
    assert alert["scenario"].endswith("…")


def _decision(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "ban", "scope": "Ip", "value": value, "duration": "3h", "origin": "cscli", **extra}


@pytest.mark.parametrize(
    ("decisions", "count"),
    [
        pytest.param([_decision("203.0.113.7")], 1, id="same-value"),
        pytest.param([_decision("203.0.113.7", origin="crowdsec")], 1, id="any-origin"),
        pytest.param([_decision("203.0.113.0/24", scope="Range")], 0, id="containing-range-not-counted"),
        pytest.param([_decision("203.0.113.7", type="captcha")], 0, id="not-a-ban"),
        pytest.param([_decision("203.0.113.7", simulated=True)], 0, id="simulated"),
        pytest.param([_decision("203.0.113.7", duration="-5m")], 0, id="expired"),
        pytest.param([_decision("not an ip")], 0, id="garbage-value"),
        pytest.param([_decision("203.0.113.7"), _decision("203.0.113.7", duration="1h")], 2, id="two"),
    ],
)
def test_decisions_on(decisions: list[dict[str, Any]], count: int) -> None:
    assert len(decisions_on(decisions, parse_target("203.0.113.7"))) == count


def test_token_lifetime_is_measured_on_the_lapis_clock() -> None:
    issued = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert token_lifetime("2026-01-01T13:00:00Z", issued) == timedelta(hours=1)
    assert token_lifetime("not a time", issued) is None
