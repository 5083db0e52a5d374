"""Table-driven tests for masking secrets in run records, logs and API answers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from autoremedy.decide.redact import REDACTED, is_secret_key, redact

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
            "auth": {"client_secret": REDACTED, "client_id": "id"},
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
