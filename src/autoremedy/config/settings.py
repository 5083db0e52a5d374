"""The daemon's configuration: one YAML file, secrets overridable from the environment.

Every key is declared here with its default; an unknown key is an error naming the file and the key. Environment
variables `AUTOREMEDY_<SECTION>__<KEY>` (e.g. `AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS='["s3cret"]'`) override the
file, so tokens need not be written into it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from autoremedy.config.errors import problems_from_validation
from autoremedy.config.integrations import CrowdSecSettings, DatabaseSettings
from autoremedy.config.yamlfile import FileProblems, LoadedYaml, Problem, load_yaml_file
from autoremedy.decide.guardrails import compile_window
from autoremedy.models.durations import Duration
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.webhook import WebhookLimits

DEFAULT_PORT = 9095


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ScopeName = Literal["ingest", "read", "control"]
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class ApiToken(_Section):
    """A named bearer token with its scopes; its `name` is what the audit log records (as `token:<name>`)."""

    name: str = Field(description="who holds it, recorded in the audit log as `token:<name>` (e.g. ops-cli)")
    token: SecretStr | None = Field(default=None, description="the token; or token_file, or the env override")
    token_file: Path | None = Field(default=None, description="a file holding the token (e.g. a mounted Secret)")
    scopes: list[ScopeName] = Field(
        min_length=1, description="what it may do: ingest (POST alerts), read (runs, status), control (approve...)"
    )

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, name: str) -> str:
        if not _CREDENTIAL_NAME.match(name):
            raise ValueError(f"token name {name!r}: 1-64 of letters, digits, `_.@-`, starting with a letter or digit")
        return name

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("a token must not be empty")
        return token


class ApiUser(_Section):
    """An HTTP basic-auth user with scopes (a person signing in to the console, say); recorded as `basic:<name>`."""

    name: str = Field(description="the user name, recorded in the audit log as `basic:<name>`")
    password: SecretStr | None = Field(default=None, description="the password; or password_file, or the env")
    password_file: Path | None = Field(default=None, description="a file holding the password")
    scopes: list[ScopeName] = Field(min_length=1, description="what the user may do: ingest, read, control")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, name: str) -> str:
        if not _CREDENTIAL_NAME.match(name):
            raise ValueError(f"user name {name!r}: 1-64 of letters, digits, `_.@-`, starting with a letter or digit")
        return name

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None and not password.get_secret_value():
            raise ValueError("a password must not be empty")
        return password


class AuthSettings(_Section):
    bearer_tokens: list[SecretStr] = Field(
        default_factory=list, description="legacy `Authorization: Bearer` tokens: scopes ingest and read"
    )
    basic_users: dict[str, SecretStr] = Field(
        default_factory=dict, description="legacy HTTP basic auth, user to password: scopes ingest and read"
    )
    tokens: list[ApiToken] = Field(
        default_factory=list, description="named bearer tokens with scopes (ingest, read, control)"
    )
    users: list[ApiUser] = Field(default_factory=list, description="HTTP basic-auth users with scopes")
    allow_anonymous: bool = Field(
        default=False,
        description="serve without credentials on a non-loopback address (anonymous callers get ingest and read)",
    )
    protect_metrics: bool = Field(default=False, description="GET /metrics needs a credential with the read scope")

    @property
    def has_credentials(self) -> bool:
        return bool(self.bearer_tokens or self.basic_users or self.tokens or self.users)

    @field_validator("bearer_tokens")
    @classmethod
    def _tokens_not_empty(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        if any(not token.get_secret_value().strip() for token in tokens):
            raise ValueError("a bearer token must not be empty")
        return tokens

    @field_validator("basic_users")
    @classmethod
    def _users_not_empty(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if any(not user.strip() or not password.get_secret_value() for user, password in users.items()):
            raise ValueError("a basic auth user needs a name and a non-empty password")
        return users

    @field_validator("tokens")
    @classmethod
    def _token_names_unique(cls, tokens: list[ApiToken]) -> list[ApiToken]:
        names = [token.name for token in tokens]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"token names must be unique: {', '.join(duplicates)} appear more than once")
        for token in tokens:
            if (token.token is None) == (token.token_file is None):
                raise ValueError(f"token {token.name!r}: set exactly one of token and token_file")
        return tokens

    @field_validator("users")
    @classmethod
    def _user_names_unique(cls, users: list[ApiUser]) -> list[ApiUser]:
        names = [user.name for user in users]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"user names must be unique: {', '.join(duplicates)} appear more than once")
        for user in users:
            if (user.password is None) == (user.password_file is None):
                raise ValueError(f"user {user.name!r}: set exactly one of password and password_file")
        return users

    @model_validator(mode="after")
    def _one_user_one_entry(self) -> AuthSettings:
        both = sorted({user.name for user in self.users} & set(self.basic_users))
        if both:
            raise ValueError(f"{', '.join(both)}: in both users and basic_users; keep one (users has scopes)")
        return self


class UiSettings(_Section):
    enabled: bool = Field(default=True, description="serve the web console at /ui/")
    secure_cookies: bool = Field(
        default=False,
        description="mark the session cookie Secure (always done when the request came over TLS); set it behind a "
        "TLS-terminating proxy",
    )
    session_ttl: Duration = Field(default=timedelta(hours=12), description="a console sign-in lasts this long")

    @field_validator("session_ttl")
    @classmethod
    def _ttl_positive(cls, ttl: timedelta) -> timedelta:
        if ttl <= timedelta(0):
            raise ValueError("session_ttl must be longer than zero")
        return ttl


class ServerSettings(_Section):
    listen: str = Field(default=f"127.0.0.1:{DEFAULT_PORT}", description="host:port to listen on")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="larger webhooks get 413")
    limits: WebhookLimits = Field(default_factory=WebhookLimits, description="per alert: bigger ones get 400")
    header_timeout: Duration = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="a connection that has not sent a request's headers this long after opening, or after the "
        "previous response, is closed (idle keep-alive connections and slow headers)",
    )
    body_timeout: Duration = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="a webhook body not received whole this long after its headers gets 408 (slow or stuck bodies)",
    )
    shutdown_grace: Duration = Field(default=timedelta(seconds=25), description="SIGTERM: time to drain runs")

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {listen!r} must be host:port, e.g. 127.0.0.1:{DEFAULT_PORT}")
        return listen

    def is_loopback(self) -> bool:
        host = self.host_port[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


class StoreSettings(_Section):
    url: str = Field(default="sqlite:///var/autoremedy.db", description="sqlite:///path (relative to the config)")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="SQLite: NORMAL survives a process crash, FULL also a power loss"
    )
    busy_timeout: Duration = Field(
        default=timedelta(seconds=5), description="SQLite: how long a write waits for a lock before it fails (503)"
    )
    retention: Duration | None = Field(
        default=timedelta(days=30), description="finished runs, events and audit older than this are pruned"
    )
    pool_size: int = Field(default=10, ge=1, le=100, description="PostgreSQL: connections per instance")


class EngineSettings(_Section):
    concurrency: int = Field(default=4, ge=1, le=256, description="runs executed at once")
    max_queue_depth: int = Field(
        default=1_000_000,
        ge=1,
        description="stored alerts waiting to be decided above which webhooks get 503 (the queue is on disk)",
    )
    decide_batch: int = Field(
        default=500, ge=1, le=10_000, description="alert events claimed, decided and recorded per transaction"
    )
    max_decision_attempts: int = Field(
        default=3, ge=1, description="an event whose decision failed this many times is dead-lettered"
    )
    heartbeat_interval: Duration = Field(default=timedelta(seconds=5), description="how often runs are heartbeaten")
    takeover_after: Duration = Field(
        default=timedelta(seconds=30), description="a run without heartbeat this long is taken over by a replica"
    )
    poll_interval: Duration = Field(default=timedelta(seconds=2), description="fallback when no wake-up arrives")
    retry_backoff: Duration = Field(
        default=timedelta(seconds=1), description="first wait between a step's attempts; doubles up to 60s"
    )

    @model_validator(mode="after")
    def _takeover_outlasts_heartbeats(self) -> EngineSettings:
        # A run is taken over when its heartbeat is this old: under three intervals, one slow heartbeat (a busy
        # store, a GC pause) hands a live run to another instance.
        if self.takeover_after < 3 * self.heartbeat_interval:
            raise ValueError(
                f"takeover_after ({self.takeover_after.total_seconds():g}s) must be at least 3 x heartbeat_interval "
                f"({3 * self.heartbeat_interval.total_seconds():g}s)"
            )
        return self


class NamespacePolicy(_Section):
    allow: list[str] = Field(default_factory=list, description="namespaces actions may touch; empty: all not denied")
    deny: list[str] = Field(
        default_factory=lambda: ["kube-*"], description="never touched, glob patterns; wins over allow"
    )
    own_namespace: str | None = Field(
        default=None,
        description="the daemon's own namespace, never touched; absent: read from the service account's namespace "
        'file when running in a cluster; "" protects none',
    )


class KubernetesSettings(_Section):
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file; absent: in-cluster service account, then $KUBECONFIG, ~/.kube/config",
    )
    context: str | None = Field(default=None, description="kubeconfig context; absent: the current context")
    namespaces: NamespacePolicy = Field(default_factory=NamespacePolicy)
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="per API request")


class SlackSettings(_Section):
    token: SecretStr | None = Field(default=None, description="bot token (xoxb-...); or token_file, or env")
    token_file: Path | None = Field(default=None, description="a file holding the token (e.g. a mounted Secret)")
    channel: str = Field(default="", description="channel id or name escalations are posted to")
    base_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL")


class PagerDutySettings(_Section):
    routing_key: SecretStr | None = Field(default=None, description="Events API v2 integration key")
    routing_key_file: Path | None = None
    url: str = Field(default="https://events.pagerduty.com", description="Events API base URL")


class OpsgenieSettings(_Section):
    api_key: SecretStr | None = Field(default=None, description="API integration key (GenieKey)")
    api_key_file: Path | None = None
    url: str = Field(
        default="https://api.opsgenie.com", description="Alert API base URL (api.eu.opsgenie.com in the EU)"
    )


class NotifySettings(_Section):
    slack: SlackSettings | None = None
    pagerduty: PagerDutySettings | None = None
    opsgenie: OpsgenieSettings | None = None
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="per request to a channel")


class EscalationSettings(_Section):
    default: list[Literal["slack", "pagerduty", "opsgenie"]] = Field(
        default_factory=list, description="channels used where a rule or playbook names none"
    )
    by_severity: dict[str, list[Literal["slack", "pagerduty", "opsgenie"]]] = Field(
        default_factory=dict, description="channels by the alert's severity label, before the default"
    )
    retry_initial: Duration = Field(default=timedelta(seconds=1), description="first wait after a failed send")
    retry_max: Duration = Field(default=timedelta(minutes=10), description="longest wait between sends")


ChatRole = Literal["viewer", "operator", "approver", "admin"]
_API_PRINCIPALS = ("token:", "basic:")
_SLACK_ID = re.compile(r"^[UWCG][A-Z0-9]{2,}$")


def _check_slack_ids(ids: list[str], where: str) -> None:
    for slack_id in ids:
        if slack_id.startswith("S"):
            raise ValueError(
                f"{where}: {slack_id!r} is a user group; groups are not resolved (that needs a usergroups API "
                "call per command), list its members' user ids (U...) or a channel id (C...) instead"
            )
        if not _SLACK_ID.match(slack_id):
            raise ValueError(f"{where}: {slack_id!r} is not a Slack user id (U..., W...) or channel id (C..., G...)")


class ChatopsSlackSettings(_Section):
    signing_secret: SecretStr | None = Field(
        default=None, description="the Slack app's signing secret (Basic Information); or signing_secret_file, or env"
    )
    signing_secret_file: Path | None = Field(default=None, description="a file holding the signing secret")
    app_token: SecretStr | None = Field(
        default=None, description="app-level token (xapp-...): when set, Socket Mode is used instead of HTTP"
    )
    app_token_file: Path | None = Field(default=None, description="a file holding the app-level token")

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None


class ChatopsSettings(_Section):
    slack: ChatopsSlackSettings | None = Field(
        default=None, description="serve POST /slack/commands and /slack/interactions (bot token: notify.slack)"
    )
    roles: dict[str, ChatRole] = Field(
        default_factory=dict,
        description="Slack user id (U..., W...) or channel id (C..., G...) to role: viewer < operator < approver < "
        "admin; a user gets the higher of their own role and the channel's",
    )
    approvers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="playbook to who alone may approve or deny its runs, on every path: Slack user ids (U...) or "
        "channel ids (C...), API credentials as token:<name> or basic:<user>",
    )

    @field_validator("roles")
    @classmethod
    def _role_ids(cls, roles: dict[str, str]) -> dict[str, str]:
        _check_slack_ids(list(roles), "chatops.roles")
        return roles

    @field_validator("approvers")
    @classmethod
    def _approver_ids(cls, approvers: dict[str, list[str]]) -> dict[str, list[str]]:
        for playbook, ids in approvers.items():
            if not ids:
                raise ValueError(f"chatops.approvers.{playbook}: name at least one user or channel")
            slack_ids = [i.removeprefix("slack:") for i in ids if not i.startswith(_API_PRINCIPALS)]
            _check_slack_ids(slack_ids, f"chatops.approvers.{playbook}")
            for api_id in (i for i in ids if i.startswith(_API_PRINCIPALS)):
                if not _CREDENTIAL_NAME.match(api_id.partition(":")[2]):
                    raise ValueError(f"chatops.approvers.{playbook}: {api_id!r} names no credential")
        return approvers


class PrometheusSettings(_Section):
    url: str = Field(default="http://127.0.0.1:9090", description="Prometheus base URL for verify and query steps")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per query")


class HttpSettings(_Section):
    """`http.request` steps: where a URL built from an alert may point."""

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="glob patterns (e.g. `*.hooks.example.com`) a host built by a URL template may match; a host "
        "written literally in the template needs no entry",
    )
    allow_link_local: bool = Field(
        default=False,
        description="let http.request reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, "
        "fd00:ec2::254, metadata.google.internal)",
    )


class SecretSource(_Section):
    """Where a `{{ secret("NAME") }}` reads its value: an environment variable or a file, exactly one."""

    env: str | None = Field(default=None, description="environment variable holding the secret")
    file: Path | None = Field(default=None, description="file holding the secret (relative to the config file)")

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reads from exactly one of env or file")
        return self


class RulesWatchSettings(_Section):
    enabled: bool = Field(default=True, description="reload rules and playbooks when their files change")
    poll_interval: Duration = Field(
        default=timedelta(seconds=5), description="how often the folders are looked at (polling works on any volume)"
    )
    settle: Duration = Field(
        default=timedelta(seconds=1), description="a change is loaded once the files were unchanged this long"
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOREMEDY_", env_nested_delimiter="__", extra="forbid", frozen=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    secrets: dict[str, SecretSource] = Field(
        default_factory=dict, description='secrets playbooks read with {{ secret("NAME") }}: NAME -> {env|file}'
    )
    notify: NotifySettings = Field(default_factory=NotifySettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    chatops: ChatopsSettings = Field(default_factory=ChatopsSettings)
    crowdsec: CrowdSecSettings | None = None
    databases: dict[str, DatabaseSettings] = Field(default_factory=dict, description="by name, for postgres.promote")
    rules_dir: Path = Field(default=Path("rules"), description="rules/*.yaml, relative to the config file")
    playbooks_dir: Path = Field(default=Path("playbooks"), description="playbooks/*.yaml, relative to the config")
    rule_tests_dir: Path = Field(
        default=Path("rule-tests"), description="what `autoremedy test` runs by default, relative to the config"
    )
    rules_watch: RulesWatchSettings = Field(default_factory=RulesWatchSettings)
    dry_run: bool = Field(default=False, description="record rendered plans, perform nothing")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file: that is how secrets are kept out of it.
        return env_settings, init_settings

    def exposure_problem(self) -> str | None:
        """Why serving these settings would expose an anonymous webhook, or None."""
        auth = self.server.auth
        if self.server.is_loopback() or auth.has_credentials or auth.allow_anonymous:
            return None
        return (
            f"server.listen {self.server.listen!r} is not a loopback address and server.auth has no "
            "tokens, users, bearer_tokens or basic_users: refusing anonymous webhooks (set "
            "server.auth.allow_anonymous: true to accept that)"
        )

    @property
    def is_postgres(self) -> bool:
        return self.store.url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        return Path(self.store.url[len(prefix) :]) if self.store.url.startswith(prefix) else None


def load_settings(path: Path | None) -> Settings:
    """Read the config file (or only defaults and env when there is none); relative paths follow the file."""
    loaded = load_yaml_file(path) if path is not None else LoadedYaml("(defaults)", {}, {})
    data: Any = loaded.data if loaded.data is not None else {}
    if not isinstance(data, dict):
        raise FileProblems([Problem(loaded.file, 1, "the config must be a mapping of keys")])
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise FileProblems(problems_from_validation(exc, loaded)) from exc
    problem = settings.exposure_problem()
    if problem is not None:
        raise FileProblems([Problem(loaded.file, loaded.line_of(("server", "listen")), problem)])
    settings = _read_secret_files(settings, path.parent if path is not None else Path.cwd(), loaded)
    settings = _read_chatops_secret(settings, path.parent if path is not None else Path.cwd(), loaded)
    settings = _read_token_files(settings, path.parent if path is not None else Path.cwd(), loaded)
    approver_problems = _approver_problems(settings)
    if approver_problems:
        line = loaded.line_of(("chatops", "approvers"))
        raise FileProblems([Problem(loaded.file, line, problem) for problem in approver_problems])
    chatops_problem = _chatops_problem(settings)
    if chatops_problem:
        raise FileProblems([Problem(loaded.file, loaded.line_of(("chatops",)), chatops_problem)])
    channel_problems = _channel_problems(settings)
    if channel_problems:
        raise FileProblems([Problem(loaded.file, loaded.line_of(("escalation",)), p) for p in channel_problems])
    window_problems = [
        Problem(loaded.file, loaded.line_of(("guardrails", "maintenance_windows", index)), message)
        for index, message in _window_problems(settings)
    ]
    if window_problems:
        raise FileProblems(window_problems)
    return _resolve_paths(settings, path.parent if path is not None else Path.cwd())


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    updates: dict[str, Any] = {
        "rules_dir": base / settings.rules_dir,
        "playbooks_dir": base / settings.playbooks_dir,
        "rule_tests_dir": base / settings.rule_tests_dir,
    }
    kubeconfig = settings.kubernetes.kubeconfig
    if kubeconfig is not None:
        updates["kubernetes"] = settings.kubernetes.model_copy(update={"kubeconfig": base / kubeconfig})
    secrets = {
        name: source.model_copy(update={"file": base / source.file}) if source.file is not None else source
        for name, source in settings.secrets.items()
    }
    updates["secrets"] = secrets
    sqlite = settings.sqlite_path
    if sqlite is not None and str(sqlite) != ":memory:":
        updates["store"] = settings.store.model_copy(update={"url": f"sqlite:///{base / sqlite}"})
    return settings.model_copy(update=updates)


def _window_problems(settings: Settings) -> list[tuple[int, str]]:
    found = []
    for index, window in enumerate(settings.guardrails.maintenance_windows):
        try:
            compile_window(window)
        except ValueError as exc:
            found.append((index, f"guardrails.maintenance_windows.{index}: {exc}"))
    return found


_SECRET_FILES = (("slack", "token"), ("pagerduty", "routing_key"), ("opsgenie", "api_key"))


def _read_secret_files(settings: Settings, base: Path, loaded: LoadedYaml) -> Settings:
    """`token_file`-style keys: the secret is read from a file (a mounted Kubernetes Secret), never logged."""
    notify = settings.notify
    for channel, key in _SECRET_FILES:
        section = getattr(notify, channel)
        file = getattr(section, f"{key}_file", None) if section is not None else None
        if section is None or file is None:
            continue
        try:
            secret = (base / file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            line = loaded.line_of(("notify", channel, f"{key}_file"))
            raise FileProblems(
                [Problem(loaded.file, line, f"notify.{channel}.{key}_file: cannot read: {exc}")]
            ) from exc
        notify = notify.model_copy(update={channel: section.model_copy(update={key: SecretStr(secret)})})
    return settings.model_copy(update={"notify": notify})


def _read_chatops_secret(settings: Settings, base: Path, loaded: LoadedYaml) -> Settings:
    slack = settings.chatops.slack
    if slack is None:
        return settings
    for key in ("signing_secret", "app_token"):
        file = getattr(slack, f"{key}_file")
        if file is None:
            continue
        try:
            secret = (base / file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            line = loaded.line_of(("chatops", "slack", f"{key}_file"))
            raise FileProblems([Problem(loaded.file, line, f"chatops.slack.{key}_file: cannot read: {exc}")]) from exc
        slack = slack.model_copy(update={key: SecretStr(secret)})
    return settings.model_copy(update={"chatops": settings.chatops.model_copy(update={"slack": slack})})


def _read_token_files(settings: Settings, base: Path, loaded: LoadedYaml) -> Settings:
    """`server.auth.tokens[].token_file` and `users[].password_file`: each secret read from its file."""
    auth = settings.server.auth
    tokens = [_with_secret_from_file(t, ("tokens", i, "token"), base, loaded) for i, t in enumerate(auth.tokens)]
    users = [_with_secret_from_file(u, ("users", i, "password"), base, loaded) for i, u in enumerate(auth.users)]
    server = settings.server.model_copy(update={"auth": auth.model_copy(update={"tokens": tokens, "users": users})})
    return settings.model_copy(update={"server": server})


_Credential = TypeVar("_Credential", ApiToken, ApiUser)


def _with_secret_from_file(
    credential: _Credential, where: tuple[str, int, str], base: Path, loaded: LoadedYaml
) -> _Credential:
    section, index, key = where
    file = getattr(credential, f"{key}_file")
    if file is None:
        return credential
    line = loaded.line_of(("server", "auth", section, index, f"{key}_file"))
    try:
        secret = (base / file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        path = f"server.auth.{section}.{index}.{key}_file"
        raise FileProblems([Problem(loaded.file, line, f"{path}: cannot read: {exc}")]) from exc
    if not secret:
        raise FileProblems([Problem(loaded.file, line, f"{credential.name!r}: its {key}_file is empty")])
    return credential.model_copy(update={key: SecretStr(secret)})


def _approver_problems(settings: Settings) -> list[str]:
    """An approver naming a credential that does not exist is a typo that would lock everyone out."""
    auth = settings.server.auth
    known = {f"token:{token.name}" for token in auth.tokens} | {f"basic:{user}" for user in auth.basic_users}
    known |= {f"basic:{user.name}" for user in auth.users}
    return [
        f"chatops.approvers.{playbook}: {approver!r} is not a configured credential (server.auth.tokens or basic_users)"
        for playbook, approvers in settings.chatops.approvers.items()
        for approver in approvers
        if approver.startswith(_API_PRINCIPALS) and approver not in known
    ]


def _chatops_problem(settings: Settings) -> str | None:
    slack = settings.chatops.slack
    if slack is None:
        return None
    if slack.app_token is not None:
        if not slack.app_token.get_secret_value().startswith("xapp-"):
            return "chatops.slack.app_token must be an app-level token (xapp-...) with connections:write"
    elif slack.signing_secret is None or not slack.signing_secret.get_secret_value().strip():
        return (
            "chatops.slack needs signing_secret (or signing_secret_file): requests are checked against it; "
            "or app_token for Socket Mode"
        )
    if settings.notify.slack is None or settings.notify.slack.token is None:
        return "chatops.slack needs notify.slack with its token: approval messages are updated with it"
    return None


def configured_channels(settings: Settings) -> frozenset[str]:
    notify = settings.notify
    found = set()
    if notify.slack is not None and notify.slack.token is not None and notify.slack.channel:
        found.add("slack")
    if notify.pagerduty is not None and notify.pagerduty.routing_key is not None:
        found.add("pagerduty")
    if notify.opsgenie is not None and notify.opsgenie.api_key is not None:
        found.add("opsgenie")
    return frozenset(found)


def _channel_problems(settings: Settings) -> list[str]:
    configured = configured_channels(settings)
    named = set(settings.escalation.default)
    for channels in settings.escalation.by_severity.values():
        named.update(channels)
    return [
        f"escalation names channel {name!r} but notify.{name} is not configured (with its secret)"
        for name in sorted(named - configured)
    ]
