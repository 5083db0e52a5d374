"""The daemon's configuration: one YAML file, secrets overridable from the environment.

Every key is declared with its default (the sections live in the settings_* modules beside this one and are
re-exported here); an unknown key is an error naming the file and the key. Environment
variables `AUTOREMEDY_<SECTION>__<KEY>` (e.g. `AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS='["s3cret"]'`) override the
file, so tokens need not be written into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from autoremedy.config.errors import problems_from_validation
from autoremedy.config.integrations import CrowdSecSettings, DatabaseSettings
from autoremedy.config.settings_base import _API_PRINCIPALS, DEFAULT_PORT, ScopeName
from autoremedy.config.settings_engine import EngineSettings, KubernetesSettings, NamespacePolicy, StoreSettings
from autoremedy.config.settings_escalation import (
    ChatopsSettings,
    ChatopsSlackSettings,
    ChatRole,
    EscalationSettings,
    NotifySettings,
    OpsgenieSettings,
    PagerDutySettings,
    SlackSettings,
)
from autoremedy.config.settings_runtime import (
    HttpSettings,
    LoggingSettings,
    PrometheusSettings,
    RulesWatchSettings,
    SecretSource,
)
from autoremedy.config.settings_server import ApiToken, ApiUser, AuthSettings, ServerSettings, UiSettings
from autoremedy.config.yamlfile import FileProblems, LoadedYaml, Problem, load_yaml_file
from autoremedy.decide.guardrails import compile_window
from autoremedy.models.guardrails import GuardrailSettings

__all__ = [
    "DEFAULT_PORT",
    "ApiToken",
    "ApiUser",
    "AuthSettings",
    "ChatRole",
    "ChatopsSettings",
    "ChatopsSlackSettings",
    "CrowdSecSettings",
    "DatabaseSettings",
    "EngineSettings",
    "EscalationSettings",
    "HttpSettings",
    "KubernetesSettings",
    "LoggingSettings",
    "NamespacePolicy",
    "NotifySettings",
    "OpsgenieSettings",
    "PagerDutySettings",
    "PrometheusSettings",
    "RulesWatchSettings",
    "ScopeName",
    "SecretSource",
    "ServerSettings",
    "Settings",
    "SlackSettings",
    "StoreSettings",
    "UiSettings",
    "configured_channels",
    "load_settings",
]


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
