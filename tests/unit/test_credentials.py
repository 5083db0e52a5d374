"""Credentials to principals, and who may decide a playbook's runs: pure rules, table-driven."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from autoremedy.config.settings import ApiToken, ApiUser, AuthSettings
from autoremedy.control.credentials import (
    ALL_SCOPES,
    LEGACY_SCOPES,
    Principal,
    Scope,
    authenticate,
    configured_scopes,
)
from autoremedy.control.credentials import authenticate_login as login
from autoremedy.control.service import approver_refusal

AUTH = AuthSettings(
    tokens=[
        ApiToken(name="ops-cli", token=SecretStr("ops-secret"), scopes=["read", "control"]),
        ApiToken(name="am", token=SecretStr("am-secret"), scopes=["ingest"]),
    ],
    bearer_tokens=[SecretStr("legacy-secret")],
    basic_users={"alice": SecretStr("pä:ss")},
    users=[ApiUser(name="carol", password=SecretStr("carol-pw"), scopes=["read", "control"])],
)


def basic(pair: bytes) -> str:
    return "Basic " + base64.b64encode(pair).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("Bearer ops-secret", Principal("token:ops-cli", frozenset({Scope.READ, Scope.CONTROL})), id="tok"),
        pytest.param("bearer  am-secret ", Principal("token:am", frozenset({Scope.INGEST})), id="scheme-any-case"),
        pytest.param("Bearer legacy-secret", Principal("bearer", LEGACY_SCOPES), id="legacy-bearer"),
        pytest.param(basic("alice:pä:ss".encode()), Principal("basic:alice", LEGACY_SCOPES), id="legacy-basic"),
        pytest.param(
            basic(b"carol:carol-pw"), Principal("basic:carol", frozenset({Scope.READ, Scope.CONTROL})), id="scoped-user"
        ),
        pytest.param(basic("carol:pä:ss".encode()), None, id="scoped-user-other-password"),
        pytest.param(None, None, id="no-header"),
        pytest.param("", None, id="empty"),
        pytest.param("Bearer ", None, id="empty-token"),
        pytest.param("Bearer ops-secretx", None, id="longer-token"),
        pytest.param("Bearer ops-secrét", None, id="not-ascii"),
        pytest.param("Bearer ops-secret\udcff", None, id="surrogate"),
        pytest.param("Bearer \xff\xfe", None, id="latin-1"),
        pytest.param(basic(b"alice:wrong"), None, id="basic-wrong"),
        pytest.param(basic(b"alice"), None, id="basic-no-colon"),
        pytest.param(basic(b"\xff:x"), None, id="basic-user-not-utf8"),
        pytest.param(basic("alice:pä:ss".encode("latin-1")), None, id="basic-password-other-encoding"),
        pytest.param("Basic %%%", None, id="basic-not-base64"),
        pytest.param("Basic ²", None, id="basic-superscript"),
        pytest.param("Digest ops-secret", None, id="other-scheme"),
    ],
)
def test_authenticate(header: str | None, expected: Principal | None) -> None:
    assert authenticate(header, AUTH) == expected


def test_without_credentials_loopback_callers_are_anonymous_with_every_scope() -> None:
    assert authenticate(None, AuthSettings()) == Principal("anonymous", ALL_SCOPES)
    exposed = AuthSettings(allow_anonymous=True)
    assert authenticate("Bearer whatever", exposed) == Principal("anonymous", LEGACY_SCOPES)


@pytest.mark.parametrize(
    ("user", "secret", "name"),
    [
        (None, "ops-secret", "token:ops-cli"),
        ("", "legacy-secret", "bearer"),
        ("alice", "pä:ss", "basic:alice"),
        ("alice", "wrong", None),
        ("carol", "carol-pw", "basic:carol"),
        ("bob", "pä:ss", None),
        (None, "nope\udcff", None),
    ],
)
def test_login_form(user: str | None, secret: str, name: str | None) -> None:
    principal = login(user, secret, AUTH)
    assert (principal.name if principal else None) == name


APPROVERS = {"failover": frozenset({"U0DBA", "C0DBA", "token:oncall-lead", "basic:carol"})}


@pytest.mark.parametrize(
    ("principal", "playbook", "allowed"),
    [
        pytest.param(Principal("slack:U0DBA", ALL_SCOPES), "failover", True, id="slack-user-listed"),
        pytest.param(Principal("slack:U0X", ALL_SCOPES, via="C0DBA"), "failover", True, id="slack-channel-listed"),
        pytest.param(Principal("slack:U0X", ALL_SCOPES, via="C0ELSE"), "failover", False, id="slack-not-listed"),
        pytest.param(Principal("token:oncall-lead", ALL_SCOPES), "failover", True, id="token-listed"),
        pytest.param(Principal("token:ops-cli", ALL_SCOPES), "failover", False, id="token-not-listed"),
        pytest.param(Principal("basic:carol", ALL_SCOPES), "failover", True, id="basic-listed"),
        pytest.param(Principal("token:U0DBA", ALL_SCOPES), "failover", False, id="token-named-like-a-user"),
        pytest.param(Principal("anonymous", ALL_SCOPES), "failover", False, id="anonymous"),
        pytest.param(Principal("token:ops-cli", ALL_SCOPES), "other", True, id="playbook-without-list"),
    ],
)
def test_approvers_apply_to_every_principal(principal: Principal, playbook: str, allowed: bool) -> None:
    refusal = approver_refusal(principal, playbook, APPROVERS)
    assert (refusal is None) == allowed
    if refusal is not None:
        assert principal.name in refusal and "chatops.approvers.failover" in refusal


@pytest.mark.parametrize(
    ("name", "auth", "scopes"),
    [
        pytest.param("token:ops-cli", AUTH, {Scope.READ, Scope.CONTROL}, id="token"),
        pytest.param("token:gone", AUTH, set(), id="token-removed"),
        pytest.param("basic:carol", AUTH, {Scope.READ, Scope.CONTROL}, id="scoped-user"),
        pytest.param("basic:alice", AUTH, set(LEGACY_SCOPES), id="legacy-user"),
        pytest.param("basic:bob", AUTH, set(), id="user-removed"),
        pytest.param("bearer", AUTH, set(LEGACY_SCOPES), id="legacy-bearer"),
        pytest.param("bearer", AuthSettings(tokens=AUTH.tokens), set(), id="legacy-bearer-removed"),
        pytest.param("anonymous", AUTH, set(), id="anonymous-once-credentials-exist"),
        pytest.param("anonymous", AuthSettings(), set(ALL_SCOPES), id="anonymous-loopback"),
        pytest.param("slack:U0X", AUTH, set(), id="not-an-api-principal"),
    ],
)
def test_configured_scopes(name: str, auth: AuthSettings, scopes: set[Scope]) -> None:
    assert configured_scopes(name, auth) == scopes
