"""Secrets in the configuration: every SecretStr is masked, `secrets:` are read from env or file, a playbook that
reads a missing secret is refused at load with file:line, and PromQL templates with alert data outside quotes
load with a file:line warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoremedy.actions.registry import default_registry
from autoremedy.app import load_rules
from autoremedy.config.secrets import configured_secrets, resolve_secrets
from autoremedy.config.settings import load_settings
from autoremedy.config.yamlfile import FileProblems


def _write_config(root: Path, config: dict[str, object], playbook: dict[str, object] | None = None) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "playbooks").mkdir()
    steps = [{"action": "log", "with": {"message": "hi"}}]
    book = playbook or {"name": "pb", "target": "t", "steps": steps}
    (root / "playbooks" / "pb.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
    rules = {"rules": [{"name": "r", "matchers": ['alertname="X"'], "playbook": "pb"}]}
    (root / "rules" / "r.yaml").write_text(yaml.safe_dump(rules))
    path = root / "autoremedy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_configured_secrets_covers_every_secret_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_WEBHOOK", "env-webhook-secret")
    (tmp_path / "file-secret").write_text("file-secret-value\n")
    config = {
        "server": {"auth": {"bearer_tokens": ["bearer-tok"], "basic_users": {"ops": "basic-pw"}}},
        "store": {"url": "postgresql://autoremedy:store-pw@db:5432/autoremedy"},
        "notify": {"pagerduty": {"routing_key": "pd-routing-key"}},
        "crowdsec": {"url": "http://lapi:8080", "machine_id": "m", "password": "cs-pw", "bouncer_key": "cs-bk"},
        "databases": {"main": {"primary": "postgresql://u:dsn-pw@p/x", "replica": "postgresql://u@r/x"}},
        "secrets": {"WEBHOOK": {"env": "TT_WEBHOOK"}, "FILED": {"file": "file-secret"}},
    }
    settings = load_settings(_write_config(tmp_path, config))
    found = set(configured_secrets(settings))
    expected = {
        "bearer-tok",
        "basic-pw",
        "store-pw",
        "pd-routing-key",
        "cs-pw",
        "cs-bk",
        "postgresql://u:dsn-pw@p/x",
        "dsn-pw",
        "postgresql://u@r/x",
        "env-webhook-secret",
        "file-secret-value",
    }
    assert expected <= found


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        pytest.param({"env": "TT_UNSET_VARIABLE"}, "environment variable TT_UNSET_VARIABLE is not set", id="env"),
        pytest.param({"file": "missing-file"}, "cannot read", id="file"),
    ],
)
def test_a_playbook_reading_a_missing_secret_is_refused_with_its_line(
    tmp_path: Path, source: dict[str, str], problem: str
) -> None:
    playbook = {
        "name": "pb",
        "target": "t",
        "steps": [
            {"action": "log", "with": {"message": "fine"}},
            {"action": "http.request", "with": {"url": "https://h/x", "headers": {"X-T": '{{ secret("HOOK") }}'}}},
        ],
    }
    settings = load_settings(_write_config(tmp_path, {"secrets": {"HOOK": source}}, playbook))
    assert resolve_secrets(settings).values == {}
    with pytest.raises(FileProblems) as raised:
        load_rules(settings, default_registry(settings))
    (found,) = raised.value.problems
    assert found.file.endswith("pb.yaml") and found.line == 11
    assert "steps.1.with.headers.X-T" in found.message and problem in found.message


@pytest.mark.parametrize(
    ("template", "where", "message"),
    [
        pytest.param('{{ secret("NOPE") }}', "step", "secret 'NOPE' is not configured", id="unknown"),
        pytest.param("{{ secret(alert.labels.name) }}", "step", "takes the name as a literal string", id="from-label"),
        pytest.param('{{ secret("HOOK") }}', "target", "only available in step inputs", id="in-target"),
    ],
)
def test_secret_reference_problems(tmp_path: Path, template: str, where: str, message: str) -> None:
    monkey_env = {"secrets": {"HOOK": {"env": "PATH"}}}  # PATH is always set
    step = {"action": "log", "with": {"message": template if where == "step" else "x"}}
    playbook = {"name": "pb", "target": template if where == "target" else "t", "steps": [step]}
    settings = load_settings(_write_config(tmp_path, monkey_env, playbook))
    with pytest.raises(FileProblems) as raised:
        load_rules(settings, default_registry(settings))
    assert any(message in problem.message for problem in raised.value.problems), raised.value


def test_promql_outside_quotes_is_a_warning_with_file_and_line(tmp_path: Path) -> None:
    query = 'up{job="{{ alert.labels.job }}"}\n  > {{ params.threshold }}\n'
    playbook = {
        "name": "pb",
        "target": "t",
        "steps": [{"name": "check", "action": "prometheus.verify", "with": {"query": query, "within": "1m"}}],
    }
    path = _write_config(tmp_path, {}, playbook)
    text = (tmp_path / "playbooks" / "pb.yaml").read_text()
    query_line = next(n for n, line in enumerate(text.splitlines(), 1) if "query:" in line)
    settings = load_settings(path)
    ruleset = load_rules(settings, default_registry(settings))
    (warning,) = ruleset.warnings
    assert warning.startswith(f"{tmp_path / 'playbooks' / 'pb.yaml'}:{query_line + 1}: steps.0.with.query:")
    assert "params.threshold" in warning and "outside a quoted PromQL string" in warning


def test_the_repository_playbooks_load_without_warnings() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(None)
    ruleset = load_rules(
        settings.model_copy(update={"rules_dir": repo / "rules", "playbooks_dir": repo / "playbooks"}),
        default_registry(settings),
    )
    assert ruleset.warnings == ()
