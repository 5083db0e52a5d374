"""The `crowdsec:` and `databases:` sections: defaults, strict checks that name the key (and never quote a DSN),
secrets from the environment."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autoremedy.config.settings import load_settings
from autoremedy.config.yamlfile import FileProblems


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "autoremedy.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_settings(path)


def _problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(FileProblems) as caught:
        _load(tmp_path, text)
    return str(caught.value)


def test_crowdsec_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, "crowdsec: {url: 'http://cs:8080/', machine_id: m, password: p}\n"))
    crowdsec = settings.crowdsec
    assert crowdsec is not None
    assert (crowdsec.url, crowdsec.max_prefix, crowdsec.max_prefix_v6, crowdsec.allowlist) == (
        "http://cs:8080",
        24,
        48,
        [],
    )
    assert crowdsec.bouncer_key is None
    assert load_settings(_write(tmp_path, "{}\n")).crowdsec is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoremedy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param(
            "crowdsec: {url: cs:8080, machine_id: m, password: p}", "must be an http:// or https:// URL", id="url"
        ),
        pytest.param(
            "crowdsec: {url: 'http://cs', machine_id: m, password: p, allowlist: [10.0.0.0/8, office]}",
            "allowlist entry 'office' is not an IP address or CIDR",
            id="allowlist",
        ),
        pytest.param(
            "crowdsec: {url: 'http://cs', machine_id: m, password: p, max_prefix: 33}",
            "crowdsec.max_prefix: Input should be less than or equal to 32",
            id="max-prefix",
        ),
        pytest.param("crowdsec: {url: 'http://cs', machine_id: m}", "crowdsec.password: required", id="password"),
        pytest.param(
            "databases: {orders: {primary: 'mysql://u:hunter2@h/db', replica: 'postgresql://u@h/db'}}",
            "databases.orders.primary: Value error, must be a postgresql:// URL",
            id="dsn-scheme",
        ),
        pytest.param(
            "databases: {orders: {primary: 'postgresql://u@h/db'}}",
            "databases.orders.replica: required key is missing",
            id="replica-missing",
        ),
    ],
)
def test_bad_sections_name_the_key(tmp_path: Path, section: str, message: str) -> None:
    problems = _problems(tmp_path, section + "\n")
    assert message in problems
    assert "hunter2" not in problems


def test_database_passwords_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOREMEDY_DATABASES__ORDERS__PASSWORD", "from-env")
    monkeypatch.setenv("AUTOREMEDY_CROWDSEC__PASSWORD", "cs-from-env")
    path = _write(
        tmp_path,
        "crowdsec: {url: 'http://cs', machine_id: m}\n"
        "databases: {orders: {primary: 'postgresql://u@a/db', replica: 'postgresql://u@b/db'}}\n",
    )
    settings = load_settings(path)
    orders = settings.databases["orders"]
    assert orders.password is not None and orders.password.get_secret_value() == "from-env"
    assert orders.connect_timeout.total_seconds() == 3
    assert settings.crowdsec is not None and settings.crowdsec.password.get_secret_value() == "cs-from-env"
    assert "from-env" not in repr(settings)
