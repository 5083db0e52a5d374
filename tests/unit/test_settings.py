"""Table-driven tests for load_settings: defaults, unknown keys, the anonymous-exposure guard, env and paths."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from autoremedy.config.settings import Settings, load_settings
from autoremedy.config.yamlfile import FileProblems


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own AUTOREMEDY_* variables must not leak into these tests.
    for name in list(os.environ):
        if name.upper().startswith("AUTOREMEDY_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str, name: str = "autoremedy.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str) -> Settings:
    return load_settings(_write(tmp_path, text))


def _problems(tmp_path: Path, text: str) -> tuple[Path, list[str]]:
    path = _write(tmp_path, text)
    with pytest.raises(FileProblems) as caught:
        load_settings(path)
    return path, [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("text", [pytest.param("", id="empty-file"), pytest.param("# nothing\n", id="comment-only")])
def test_defaults(tmp_path: Path, text: str) -> None:
    settings = _load(tmp_path, text)
    assert settings.server.listen == "127.0.0.1:9095"
    assert settings.server.host_port == ("127.0.0.1", 9095)
    assert settings.server.auth.bearer_tokens == []
    assert settings.server.auth.basic_users == {}
    assert settings.server.auth.allow_anonymous is False
    assert settings.server.max_body_bytes == 4 * 1024 * 1024
    assert settings.server.shutdown_grace == timedelta(seconds=25)
    assert settings.store.synchronous == "NORMAL"
    assert settings.engine.concurrency == 4
    assert settings.engine.poll_interval == timedelta(seconds=2)
    assert (settings.logging.level, settings.logging.format) == ("info", "json")
    assert settings.dry_run is False
    assert settings.rules_dir == tmp_path / "rules"
    assert settings.playbooks_dir == tmp_path / "playbooks"
    assert settings.store.url == f"sqlite:///{tmp_path / 'var/autoremedy.db'}"


def test_values_from_the_file(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        """
        server:
          shutdown_grace: 1m
          max_body_bytes: 1024
        engine:
          concurrency: 8
          poll_interval: 500ms
        logging: {level: debug, format: console}
        dry_run: true
        """,
    )
    assert settings.server.shutdown_grace == timedelta(minutes=1)
    assert settings.server.max_body_bytes == 1024
    assert settings.engine.concurrency == 8
    assert settings.engine.poll_interval == timedelta(milliseconds=500)
    assert (settings.logging.level, settings.logging.format) == ("debug", "console")
    assert settings.dry_run is True


# (config, line of the problem, start of the message)
UNKNOWN_KEY_CASES = [
    pytest.param("bogus: 1\n", 1, "bogus: unknown key 'bogus'", id="top-level"),
    pytest.param("server:\n  listne: 127.0.0.1:9095\n", 2, "server.listne: unknown key 'listne'", id="section"),
    pytest.param(
        "server:\n  listen: 127.0.0.1:9095\n  auth:\n    tokenz: [x]\n",
        4,
        "server.auth.tokenz: unknown key 'tokenz'",
        id="nested-section",
    ),
    pytest.param("dry_run: false\nengine:\n  workers: 2\n", 3, "engine.workers: unknown key 'workers'", id="engine"),
    pytest.param("store:\n\n  path: x.db\n", 3, "store.path: unknown key 'path'", id="after-blank-line"),
]


@pytest.mark.parametrize(("text", "line", "message"), UNKNOWN_KEY_CASES)
def test_unknown_key_names_file_line_and_key(tmp_path: Path, text: str, line: int, message: str) -> None:
    path, problems = _problems(tmp_path, text)
    assert problems == [f"{path}:{line}: {message}"]


# (config, line, start of the message)
BAD_VALUE_CASES = [
    pytest.param(
        "server:\n  shutdown_grace: 5\n", 2, "server.shutdown_grace: Value error, invalid duration 5", id="duration"
    ),
    pytest.param("engine:\n  concurrency: 0\n", 2, "engine.concurrency: ", id="concurrency-zero"),
    pytest.param("logging:\n  level: loud\n", 2, "logging.level: ", id="log-level"),
    pytest.param("store:\n  synchronous: OFF\n", 2, "store.synchronous: ", id="synchronous-off"),
    pytest.param("dry_run: maybe\n", 1, "dry_run: ", id="dry-run-not-bool"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_VALUE_CASES)
def test_bad_values(tmp_path: Path, text: str, line: int, message: str) -> None:
    path, problems = _problems(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: {message}")


def test_config_must_be_a_mapping(tmp_path: Path) -> None:
    path, problems = _problems(tmp_path, "- a\n- b\n")
    assert problems == [f"{path}:1: the config must be a mapping of keys"]


# Listening beyond loopback without credentials is refused.
EXPOSED_CASES = [
    pytest.param("0.0.0.0:9095", id="any-ipv4"),
    pytest.param("[::]:9095", id="any-ipv6"),
    pytest.param("192.168.1.10:9095", id="lan-address"),
    pytest.param("alertmanager.internal:9095", id="host-name"),
    pytest.param("localhost.example.com:9095", id="not-quite-localhost"),
]


@pytest.mark.parametrize("listen", EXPOSED_CASES)
def test_non_loopback_without_credentials_is_refused(tmp_path: Path, listen: str) -> None:
    path, problems = _problems(tmp_path, f"server:\n  listen: '{listen}'\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:")
    assert f"server.listen {listen!r} is not a loopback address" in problems[0]
    assert "allow_anonymous" in problems[0]


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param("bearer_tokens: [s3cret]", id="bearer-tokens"),
        pytest.param("basic_users: {alertmanager: s3cret}", id="basic-users"),
        pytest.param("allow_anonymous: true", id="allow-anonymous"),
    ],
)
@pytest.mark.parametrize("listen", EXPOSED_CASES)
def test_non_loopback_allowed_with_credentials_or_explicit_anonymous(tmp_path: Path, listen: str, auth: str) -> None:
    settings = _load(tmp_path, f"server:\n  listen: '{listen}'\n  auth:\n    {auth}\n")
    assert settings.server.listen == listen
    assert not settings.server.is_loopback()


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        pytest.param("bearer_tokens: ['']", "a bearer token must not be empty", id="empty-bearer-token"),
        pytest.param("bearer_tokens: ['  ']", "a bearer token must not be empty", id="blank-bearer-token"),
        pytest.param("basic_users: {ops: ''}", "non-empty password", id="empty-password"),
        pytest.param("bearer_tokens: []", "allow_anonymous", id="empty-token-list"),
        pytest.param("basic_users: {}", "allow_anonymous", id="empty-user-map"),
        pytest.param("allow_anonymous: false", "allow_anonymous", id="anonymous-false"),
    ],
)
def test_empty_credentials_do_not_count(tmp_path: Path, auth: str, expected: str) -> None:
    # An empty bearer token is matched by `Authorization: Bearer ` with nothing after it: no credential at all.
    _, problems = _problems(tmp_path, f"server:\n  listen: 0.0.0.0:9095\n  auth:\n    {auth}\n")
    assert len(problems) == 1, problems
    assert expected in problems[0]


# (listen, host, port)
LOOPBACK_CASES = [
    pytest.param("127.0.0.1:9095", "127.0.0.1", 9095, id="ipv4"),
    pytest.param("127.8.9.10:1", "127.8.9.10", 1, id="ipv4-loopback-range"),
    pytest.param("[::1]:9095", "::1", 9095, id="ipv6"),
    pytest.param("localhost:9095", "localhost", 9095, id="localhost"),
    pytest.param("localhost:65535", "localhost", 65535, id="highest-port"),
]


@pytest.mark.parametrize(("listen", "host", "port"), LOOPBACK_CASES)
def test_loopback_needs_no_credentials(tmp_path: Path, listen: str, host: str, port: int) -> None:
    settings = _load(tmp_path, f"server:\n  listen: '{listen}'\n")
    assert settings.server.is_loopback()
    assert settings.server.host_port == (host, port)
    assert not settings.server.auth.has_credentials


@pytest.mark.parametrize(
    "listen",
    [
        pytest.param("9095", id="port-only"),
        pytest.param(":9095", id="no-host"),
        pytest.param("localhost", id="no-port"),
        pytest.param("localhost:", id="empty-port"),
        pytest.param("localhost:http", id="named-port"),
        pytest.param("localhost:0", id="port-zero"),
        pytest.param("localhost:65536", id="port-too-high"),
        pytest.param("localhost:-1", id="negative-port"),
    ],
)
def test_bad_listen_is_rejected(tmp_path: Path, listen: str) -> None:
    path, problems = _problems(tmp_path, f"server:\n  listen: '{listen}'\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:2: server.listen: ")
    assert f"listen {listen!r} must be host:port" in problems[0]


def test_listen_must_be_a_string(tmp_path: Path) -> None:
    path, problems = _problems(tmp_path, "server:\n  listen: 9095\n")
    assert problems == [f"{path}:2: server.listen: Input should be a valid string"]


ENV_TOKENS = "AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS"


def test_env_tokens_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TOKENS, '["x"]')
    settings = _load(
        tmp_path,
        """
        server:
          listen: 0.0.0.0:9095
          auth:
            bearer_tokens: [from-file]
        """,
    )
    assert [token.get_secret_value() for token in settings.server.auth.bearer_tokens] == ["x"]
    # Only the overridden key changes; the rest of the section still comes from the file.
    assert settings.server.listen == "0.0.0.0:9095"


def test_env_tokens_satisfy_the_exposure_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "server:\n  listen: 0.0.0.0:9095\n"
    _problems(tmp_path, text)
    monkeypatch.setenv(ENV_TOKENS, '["x"]')
    settings = _load(tmp_path, text)
    assert settings.server.auth.has_credentials


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        pytest.param("AUTOREMEDY_DRY_RUN", "true", lambda s: s.dry_run is True, id="top-level"),
        pytest.param("AUTOREMEDY_ENGINE__CONCURRENCY", "16", lambda s: s.engine.concurrency == 16, id="section-key"),
        pytest.param(
            "AUTOREMEDY_SERVER__AUTH__BASIC_USERS",
            '{"am": "pw"}',
            lambda s: [(u, p.get_secret_value()) for u, p in s.server.auth.basic_users.items()] == [("am", "pw")],
            id="nested-map",
        ),
    ],
)
def test_env_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, check: Callable[[Settings], bool]
) -> None:
    settings = _load(tmp_path, "dry_run: false\nengine:\n  concurrency: 2\n")
    assert not check(settings)
    monkeypatch.setenv(name, value)
    assert check(_load(tmp_path, "dry_run: false\nengine:\n  concurrency: 2\n"))


def test_env_alone_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOREMEDY_SERVER__LISTEN", "0.0.0.0:8080")
    monkeypatch.setenv(ENV_TOKENS, '["x"]')
    settings = load_settings(None)
    assert settings.server.host_port == ("0.0.0.0", 8080)
    assert settings.rules_dir == tmp_path / "rules"


# (config, (rules_dir, playbooks_dir, store url)), all relative to the config file's folder `etc`
PATH_CASES = [
    pytest.param(
        "rules_dir: r\nplaybooks_dir: ../shared/pb\nstore:\n  url: sqlite:///data/x.db\n",
        ("etc/r", "etc/../shared/pb", "sqlite:///{root}/etc/data/x.db"),
        id="relative",
    ),
    pytest.param("", ("etc/rules", "etc/playbooks", "sqlite:///{root}/etc/var/autoremedy.db"), id="defaults"),
    pytest.param(
        "rules_dir: /abs/rules\nplaybooks_dir: /abs/pb\nstore:\n  url: sqlite:////abs/x.db\n",
        ("/abs/rules", "/abs/pb", "sqlite:////abs/x.db"),
        id="absolute-kept",
    ),
    pytest.param(
        "store:\n  url: 'sqlite:///:memory:'\n", ("etc/rules", "etc/playbooks", "sqlite:///:memory:"), id="memory-kept"
    ),
]


@pytest.mark.parametrize(("text", "expected"), PATH_CASES)
def test_relative_paths_follow_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: tuple[str, str, str]
) -> None:
    rules_dir, playbooks_dir, url = expected
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    settings = load_settings(_write(tmp_path, text, name="etc/autoremedy.yaml"))
    assert settings.rules_dir == tmp_path / rules_dir
    assert settings.playbooks_dir == tmp_path / playbooks_dir
    assert settings.store.url == url.format(root=tmp_path)


def test_repository_example_config_loads() -> None:
    config = Path(__file__).resolve().parents[2] / "autoremedy.yaml"
    settings = load_settings(config)
    assert settings.server.is_loopback()
    assert settings.server.auth.has_credentials
    assert settings.rules_dir == config.parent / "rules"


CHATOPS = """
notify:
  slack: {token: xoxb-1, channel: C0ONCALL}
chatops:
  slack: {signing_secret_file: slack-signing}
  roles: {U0ALICE: approver, C0ONCALL: viewer}
  approvers: {failover-postgres: [U0DBA]}
"""


def test_chatops_reads_the_signing_secret_file(tmp_path: Path) -> None:
    (tmp_path / "slack-signing").write_text("abc123\n")
    settings = _load(tmp_path, CHATOPS)
    assert settings.chatops.slack is not None and settings.chatops.slack.signing_secret is not None
    assert settings.chatops.slack.signing_secret.get_secret_value() == "abc123"
    assert settings.chatops.roles == {"U0ALICE": "approver", "C0ONCALL": "viewer"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("notify: {slack: {token: xoxb-1}}\nchatops: {slack: {}}", "needs signing_secret", id="no-secret"),
        pytest.param("chatops: {slack: {signing_secret: s}}", "needs notify.slack", id="no-bot-token"),
        pytest.param("chatops: {roles: {S0DBTEAM: admin}}", "is a user group", id="user-group"),
        pytest.param("chatops: {roles: {alice: admin}}", "is not a Slack user id", id="a-name"),
        pytest.param("chatops: {roles: {U0ALICE: root}}", "viewer", id="unknown-role"),
        pytest.param("chatops: {approvers: {failover-postgres: []}}", "at least one", id="no-approvers"),
    ],
)
def test_chatops_problems_are_named(tmp_path: Path, text: str, message: str) -> None:
    _, problems = _problems(tmp_path, text)
    assert any(message in problem for problem in problems), problems


def test_chatops_socket_mode_needs_an_app_token_and_no_signing_secret(tmp_path: Path) -> None:
    (tmp_path / "app-token").write_text("xapp-1-A1-2-abc\n")
    text = "notify: {slack: {token: xoxb-1}}\nchatops: {slack: {app_token_file: app-token}}"
    slack = _load(tmp_path, text).chatops.slack
    assert slack is not None and slack.socket_mode and slack.signing_secret is None
    _, problems = _problems(tmp_path, "notify: {slack: {token: xoxb-1}}\nchatops: {slack: {app_token: xoxb-2}}")
    assert any("app-level token (xapp-...)" in problem for problem in problems), problems


TOKENS = """
server:
  auth:
    tokens:
      - {name: ops-cli, token_file: ops.token, scopes: [read, control]}
      - {name: alertmanager, token: am-secret, scopes: [ingest]}
chatops:
  approvers: {failover-postgres: [U0DBA, token:ops-cli]}
"""


def test_scoped_tokens_from_the_file_and_token_files(tmp_path: Path) -> None:
    (tmp_path / "ops.token").write_text("ops-secret\n")
    auth = _load(tmp_path, TOKENS).server.auth
    assert [(t.name, t.token.get_secret_value() if t.token else None, t.scopes) for t in auth.tokens] == [
        ("ops-cli", "ops-secret", ["read", "control"]),
        ("alertmanager", "am-secret", ["ingest"]),
    ]
    assert auth.has_credentials and auth.protect_metrics is False


def test_scoped_tokens_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AUTOREMEDY_SERVER__AUTH__TOKENS", '[{"name": "ops-cli", "token": "env-secret", "scopes": ["control"]}]'
    )
    auth = _load(tmp_path, "server: {listen: 0.0.0.0:9095}\n").server.auth
    assert [(t.name, t.token.get_secret_value() if t.token else None) for t in auth.tokens] == [
        ("ops-cli", "env-secret")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("server: {auth: {tokens: [{name: a, scopes: [read]}]}}", "exactly one of", id="no-token"),
        pytest.param(
            "server: {auth: {tokens: [{name: a, token: x, token_file: f, scopes: [read]}]}}",
            "exactly one of",
            id="token-and-file",
        ),
        pytest.param("server: {auth: {tokens: [{name: a, token: x, scopes: []}]}}", "at least 1", id="no-scopes"),
        pytest.param("server: {auth: {tokens: [{name: a, token: x, scopes: [admin]}]}}", "control", id="bad-scope"),
        pytest.param("server: {auth: {tokens: [{name: a b, token: x, scopes: [read]}]}}", "token name", id="name"),
        pytest.param("server: {auth: {tokens: [{name: a, token: ' ', scopes: [read]}]}}", "empty", id="blank"),
        pytest.param(
            "server: {auth: {tokens: [{name: a, token: x, scopes: [read]}, {name: a, token: y, scopes: [read]}]}}",
            "unique",
            id="duplicate-name",
        ),
        pytest.param(
            "server: {auth: {tokens: [{name: a, token_file: missing, scopes: [read]}]}}", "cannot read", id="no-file"
        ),
        pytest.param(
            "chatops: {approvers: {failover: [token:nobody]}}", "is not a configured credential", id="unknown-approver"
        ),
    ],
)
def test_token_problems_are_named(tmp_path: Path, text: str, message: str) -> None:
    _, problems = _problems(tmp_path, text)
    assert any(message in problem for problem in problems), problems


def test_scoped_basic_users_and_password_files(tmp_path: Path) -> None:
    (tmp_path / "carol.pw").write_text("carol-pw\n")
    text = """
    server:
      auth:
        users:
          - {name: carol, password_file: carol.pw, scopes: [read, control]}
    chatops:
      approvers: {failover-postgres: [basic:carol]}
    """
    auth = _load(tmp_path, text).server.auth
    assert [(u.name, u.password.get_secret_value() if u.password else None) for u in auth.users] == [
        ("carol", "carol-pw")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("server: {auth: {users: [{name: c, scopes: [read]}]}}", "exactly one of", id="no-password"),
        pytest.param(
            "server: {auth: {users: [{name: c, password: p, scopes: [read]}], basic_users: {c: q}}}",
            "in both users and basic_users",
            id="both",
        ),
        pytest.param(
            "server: {auth: {users: [{name: c, password_file: nope, scopes: [read]}]}}", "cannot read", id="no-file"
        ),
    ],
)
def test_user_problems_are_named(tmp_path: Path, text: str, message: str) -> None:
    _, problems = _problems(tmp_path, text)
    assert any(message in problem for problem in problems), problems


def test_takeover_after_must_be_three_heartbeats(tmp_path: Path) -> None:
    path, problems = _problems(tmp_path, "engine:\n  heartbeat_interval: 5s\n  takeover_after: 10s\n")
    assert problems == [
        f"{path}:1: engine: Value error, takeover_after (10s) must be at least 3 x heartbeat_interval (15s)"
    ]
    assert _load(tmp_path, "engine:\n  heartbeat_interval: 5s\n  takeover_after: 15s\n").engine.takeover_after == (
        timedelta(seconds=15)
    )
