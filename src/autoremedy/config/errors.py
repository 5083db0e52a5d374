"""Turning pydantic validation errors into file:line problems people can act on."""

from __future__ import annotations

from pydantic import ValidationError

from autoremedy.config.yamlfile import LoadedYaml, Path_, Problem


def problems_from_validation(error: ValidationError, loaded: LoadedYaml, *, prefix: Path_ = ()) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = (*prefix, *item["loc"])
        # A location pydantic adds that is not in the file (a union branch, a tag) is skipped for the line lookup.
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = _message(item["type"], item["msg"], loc)
        problems.append(Problem(loaded.file, loaded.line_of(loc), f"{field}: {message}"))
    return problems


def _message(kind: str, text: str, loc: Path_) -> str:
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return "required key is missing"
    return text
