"""Table-driven tests for masking secrets in run records, logs and API answers."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from autoremedy.decide.redact import (
    REDACTED,
    is_secret_key,
    redact,
    redact_text,
    redact_url,
    register_secrets,
    registered_secrets,
)

SECRET_KEYS = [
    pytest.param("Authorization", id="authorization"),
    pytest.param("authorization", id="authorization-lower"),
    pytest.param("Proxy-Authorization", id="proxy-authorization"),
    pytest.param("X-Api-Key", id="x-api-key"),
    pytest.param("x_api_key", id="x-api-key-underscore"),
    pytest.param("apikey", id="apikey"),
    pytest.param("API-KEY", id="api-key-upper"),
    pytest.param("password", id="password"),
    pytest.param("db_password", id="password-suffix"),
    pytest.param("PASSWORD", id="password-upper"),
    pytest.param("passwd", id="passwd"),
    pytest.param("token", id="token"),
    pytest.param("access_token", id="access-token"),
    pytest.param("X-Auth-Token", id="x-auth-token"),
    pytest.param("client_secret", id="client-secret"),
    pytest.param("secret", id="secret"),
    pytest.param("private_key", id="private-key"),
    pytest.param("Cookie", id="cookie"),
    pytest.param("Set-Cookie", id="set-cookie"),
    pytest.param("credentials", id="credentials"),
    pytest.param("X-Auth", id="x-auth"),
    pytest.param("auth", id="auth"),
    pytest.param("X-Session", id="x-session"),
    pytest.param("session_id", id="session-id"),
    pytest.param("routing_key", id="routing-key"),
    pytest.param("routingKey", id="routing-key-camel"),
    pytest.param("key", id="key"),
    pytest.param("X-Signing-Key", id="x-signing-key"),
    pytest.param("dsn", id="dsn"),
    pytest.param("primary_dsn", id="dsn-suffix"),
    pytest.param("X-Hub-Signature-256", id="signature"),
    pytest.param("slack_webhook", id="webhook"),
    pytest.param("webhook_url", id="webhook-url"),
]

PLAIN_KEYS = [
    pytest.param("Content-Type", id="content-type"),
    pytest.param("url", id="url"),
    pytest.param("method", id="method"),
    pytest.param("message", id="message"),
    pytest.param("user", id="user"),
    pytest.param("username", id="username"),
    pytest.param("author", id="author"),
    pytest.param("keyboard", id="keyboard"),
    pytest.param("headers", id="headers"),
    pytest.param("json", id="json"),
    pytest.param("severity", id="severity"),
    pytest.param("monkey", id="monkey"),
    pytest.param("keys_total", id="keys-plural"),
    pytest.param("hotkeys", id="hotkeys"),
    pytest.param("authority", id="authority"),
    pytest.param("namespace", id="namespace"),
    pytest.param("label_selector", id="label-selector"),
    pytest.param("query", id="query"),
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_keys(key: str) -> None:
    assert not is_secret_key(key)


def _nest(depth: int, leaf: dict[str, Any]) -> Any:
    """leaf wrapped `depth` times, alternating a mapping and a list."""
    value: Any = leaf
    for level in range(depth):
        value = {"level": value} if level % 2 == 0 else [value]
    return value


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_values_are_masked_at_any_depth(key: str, depth: int) -> None:
    data = _nest(depth, {key: "s3cret", "url": "https://example.com"})
    assert redact(data) == _nest(depth, {key: REDACTED, "url": "https://example.com"})


@pytest.mark.parametrize("depth", [0, 1, 4])
@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_other_values_are_kept(key: str, depth: int) -> None:
    data = _nest(depth, {key: "visible", "n": 1, "none": None})
    assert redact(data) == data


# (value under the secret key): whatever it is, it is masked whole.
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer abc", id="string"),
        pytest.param(12345, id="int"),
        pytest.param({"user": "u", "pass": "p"}, id="mapping"),
        pytest.param(["a", "b"], id="list"),
        pytest.param(None, id="none"),
    ],
)
def test_secret_value_is_masked_whole(value: object) -> None:
    assert redact({"headers": {"Authorization": value}}) == {"headers": {"Authorization": REDACTED}}


def test_realistic_step_inputs() -> None:
    inputs = {
        "method": "POST",
        "url": "https://hooks.example.com/x",
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "Content-Type": "application/json"},
        "json": {"title": "disk full", "auth": {"client_secret": "cs", "client_id": "id"}, "tags": [{"token": "t"}]},
    }
    assert redact(inputs) == {
        "method": "POST",
        "url": "https://hooks.example.com/x",
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Content-Type": "application/json"},
        "json": {
            "title": "disk full",
            "auth": REDACTED,  # `auth` is a secret-looking key: masked whole
            "tags": [{"token": REDACTED}],
        },
    }


def test_redact_does_not_change_its_input() -> None:
    inputs = {"headers": {"Authorization": "Bearer abc"}, "list": [{"password": "p"}]}
    before = copy.deepcopy(inputs)
    redact(inputs)
    assert inputs == before


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("password", id="string-that-looks-like-a-key"),
        pytest.param(7, id="int"),
        pytest.param(None, id="none"),
        pytest.param(["token", "secret"], id="list-of-key-like-strings"),
    ],
)
def test_values_alone_are_not_masked(value: object) -> None:
    assert redact(value) == value


def test_non_string_keys_are_kept() -> None:
    assert redact({1: "one", None: "none", "token": "t"}) == {1: "one", None: "none", "token": REDACTED}


TEXTS = [
    pytest.param(
        "POST http://user:pw@hooks.example.com/hook?token=tok123&team=ops answered 500",
        f"POST http://{REDACTED}@hooks.example.com/hook?token={REDACTED}&team={REDACTED} answered 500",
        id="userinfo-and-query",
    ),
    pytest.param(
        "https://hooks.slack.com/services/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",
        f"https://hooks.slack.com/services/{REDACTED}/{REDACTED}/{REDACTED}",
        id="slack-webhook-path",
    ),
    pytest.param(
        "GET https://api.example.com/v1/hooks/Zk3J9xQ2mN7pL4vR8sT1 failed",
        f"GET https://api.example.com/v1/hooks/{REDACTED} failed",
        id="opaque-mixed-case-segment",
    ),
    pytest.param(
        "https://api.example.com/v1/d41d8cd98f00b204e9800998ecf8427e0123/run",
        f"https://api.example.com/v1/{REDACTED}/run",
        id="long-hex-segment",
    ),
    pytest.param(
        "https://kube/api/v1/namespaces/shop/pods/checkout-7d9f8b6c5-x2x9z",
        "https://kube/api/v1/namespaces/shop/pods/checkout-7d9f8b6c5-x2x9z",
        id="pod-name-kept",
    ),
    pytest.param(
        "postgresql://autoremedy:hunter2@db.internal:5432/app",
        f"postgresql://{REDACTED}@db.internal:5432/app",
        id="dsn-userinfo",
    ),
    pytest.param("http://example.com/a?flag", "http://example.com/a?flag", id="query-without-value"),
    pytest.param("https://example.com/#top", "https://example.com/#top", id="fragment"),
    pytest.param(
        "https://app.example.com/cb#access_token=ya29a0AfB1x&state=s1",
        f"https://app.example.com/cb#access_token={REDACTED}&state={REDACTED}",
        id="fragment-values",
    ),
    pytest.param(
        'POST https://auth.example.com/oauth answered 200: {"access_token": "ya29 a0AfB", "expires_in": 3599}',
        f'POST https://auth.example.com/oauth answered 200: {{"access_token": "{REDACTED}", "expires_in": 3599}}',
        id="json-body-excerpt",
    ),
    pytest.param("error: token=abcdef123456 expired", f"error: token={REDACTED} expired", id="key-equals-value"),
    pytest.param("password: hunter2hunter2", f"password: {REDACTED}", id="key-colon-value"),
    pytest.param("X-Api-Key: Zz9qwertyuiop", f"X-Api-Key: {REDACTED}", id="header-line"),
    pytest.param("{'api_key': 'abcd1234'}", f"{{'api_key': '{REDACTED}'}}", id="python-repr"),
    pytest.param("Authorization: Basic dXNlcjpwdw", f"Authorization: Basic {REDACTED}", id="short-basic"),
    pytest.param("replicas=3, monkey=banana", "replicas=3, monkey=banana", id="plain-pairs-kept"),
    pytest.param(
        "usage: run PLAYBOOK key=value ... (auth: ok)", "usage: run PLAYBOOK key=value ... (auth: ok)", id="prose-words"
    ),
    pytest.param("routing_key=R0123abc", f"routing_key={REDACTED}", id="routing-key"),
    pytest.param("Authorization: Bearer abc123def456", f"Authorization: Bearer {REDACTED}", id="bearer"),
    pytest.param("see Basic information in the app", "see Basic information in the app", id="basic-word-kept"),
    pytest.param("connection refused", "connection refused", id="plain-text"),
    pytest.param(
        "a <http://u:p@x.example/?k=v|link> in mrkdwn",
        f"a <http://{REDACTED}@x.example/?k={REDACTED}|link> in mrkdwn",
        id="slack-link",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TEXTS)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_strings_in_data_are_redacted_as_text() -> None:
    data = {"message": "GET http://u:p@h/x?token=t answered 401", "list": ["https://h/?a=b"]}
    assert redact(data) == {
        "message": f"GET http://{REDACTED}@h/x?token={REDACTED} answered 401",
        "list": [f"https://h/?a={REDACTED}"],
    }


def test_booleans_under_secret_keys_are_kept() -> None:
    assert redact({"idempotency_key": False, "token": True}) == {"idempotency_key": False, "token": True}


@pytest.fixture
def registered() -> Iterator[None]:
    before = registered_secrets()
    register_secrets(["xoxb-configured-bot-token", "hunter2!", "abc", 'p@ss w/"q"'])
    yield
    register_secrets(before)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "slack said xoxb-configured-bot-token is invalid", f"slack said {REDACTED} is invalid", id="token"
        ),
        pytest.param("pw=hunter2! in a dsn", f"pw={REDACTED} in a dsn", id="password"),
        pytest.param("abc is too short to mask", "abc is too short to mask", id="short-secret-not-masked"),
        pytest.param("http://h/p/hunter2!/x", f"http://h/p/{REDACTED}/x", id="inside-a-url-path"),
        pytest.param(
            "http://h/hunter2!/x?token=t&a=b",
            f"http://h/{REDACTED}/x?token={REDACTED}&a={REDACTED}",
            id="path-and-query",
        ),
        pytest.param(
            "GET https://h/p%40ss%20w/%22q%22/x failed", f"GET https://h/{REDACTED}/x failed", id="urlencoded"
        ),
        pytest.param("GET https://h/p@ss%20w/%22q%22/x", f"GET https://h/{REDACTED}/x", id="url-normalised"),
        pytest.param('body: {"echo": "p@ss w\\/\\"q\\""}', f'body: {{"echo": "{REDACTED}"}}', id="json-escaped"),
    ],
)
def test_registered_secrets_are_masked_literally(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact({"note": text}) == {"note": expected}


def test_redacting_twice_changes_nothing() -> None:
    once = redact_text("GET http://u:p@h/a/Zk3J9xQ2mN7pL4vR8sT1/b?token=t#f failed")
    assert redact_text(once) == once == f"GET http://{REDACTED}@h/a/{REDACTED}/b?token={REDACTED}#f failed"


def test_redact_url_keeps_a_link_query() -> None:
    url = "http://user:pw@prometheus:9090/graph?g0.expr=up%7Bjob%3D%22x%22%7D&g0.tab=1"
    assert redact_url(url, keep_query=True) == (
        f"http://{REDACTED}@prometheus:9090/graph?g0.expr=up%7Bjob%3D%22x%22%7D&g0.tab=1"
    )


def test_a_kept_link_query_still_masks_secret_looking_parameters() -> None:
    url = "http://prometheus:9090/graph?g0.expr=up&access_token=abcd1234&g0.tab=1&flag"
    expected = f"http://prometheus:9090/graph?g0.expr=up&access_token={REDACTED}&g0.tab=1&flag"
    assert redact_url(url, keep_query=True) == expected


def test_a_secret_registered_after_a_text_was_redacted_is_masked_in_it_next_time() -> None:
    before = registered_secrets()
    text = "POST https://hooks.example.com/x answered 200 for rotated-value-1234"
    try:
        register_secrets([])
        assert redact_text(text) == text  # remembered as it was
        register_secrets(["rotated-value-1234"])
        assert redact_text(text) == f"POST https://hooks.example.com/x answered 200 for {REDACTED}"
    finally:
        register_secrets(before)
