"""Table-driven tests for the sandboxed templating of playbook inputs."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from autoremedy.decide.templating import RenderError, compile_template, render_text, render_value, template_sources


def _context(**labels: str) -> dict[str, Any]:
    return {
        "alert": {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db-1:9100", **labels},
            "annotations": {"summary": "disk is full"},
            "fingerprint": "abc123",
        },
        "rule": {"name": "disk"},
        "params": {"size": "10Gi"},
    }


# (template, expected output)
RENDER_CASES = [
    pytest.param("plain text", "plain text", id="not-a-template"),
    pytest.param("", "", id="empty"),
    pytest.param("{{ alert.labels.alertname }}", "DiskFull", id="label"),
    pytest.param("{{ alert.labels['instance'] }}", "db-1:9100", id="label-subscript"),
    pytest.param("{{ alert.annotations.summary | upper }}", "DISK IS FULL", id="filter"),
    pytest.param("{{ alert.labels.job | default('none') }}", "none", id="default-filter-on-missing"),
    pytest.param("{{ params.size }}/{{ rule.name }}", "10Gi/disk", id="params-and-rule"),
    pytest.param("{% if alert.status == 'firing' %}on{% else %}off{% endif %}", "on", id="statement"),
    pytest.param("a{# comment #}b", "ab", id="comment"),
    pytest.param("{{ 3 }}", "3", id="number-renders-as-text"),
    pytest.param("line\n", "line\n", id="no-template-keeps-newline"),
]


@pytest.mark.parametrize(("source", "expected"), RENDER_CASES)
def test_render_text(source: str, expected: str) -> None:
    assert render_text(source, _context(), where="w") == expected


def test_text_without_template_markers_needs_no_context() -> None:
    # A plain string is returned as is, even with no context to render against.
    assert render_text("alert.labels.missing }}", {}, where="w") == "alert.labels.missing }}"


# (template, path given as `where`)
MISSING_CASES = [
    pytest.param("{{ alert.labels.pod }}", "steps[0].with.name", id="missing-label"),
    pytest.param("{{ alert.annotations.runbook }}", "target", id="missing-annotation"),
    pytest.param("{{ alert.labels.pod | upper }}", "params.pod", id="missing-through-filter"),
    pytest.param("{% if alert.labels.pod == 'x' %}y{% endif %}", "restart.with.pod", id="missing-in-comparison"),
    pytest.param("{{ nothing }}", "w", id="missing-variable"),
    pytest.param("pod-{{ alert.labels.pod }}-x", "w", id="missing-inside-text"),
]


@pytest.mark.parametrize(("source", "where"), MISSING_CASES)
def test_missing_value_is_an_error_naming_where(source: str, where: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_text(source, _context(), where=where)
    assert str(caught.value).startswith(f"{where}: UndefinedError: ")
    assert isinstance(caught.value.__cause__, UndefinedError)


def test_render_value_names_the_nested_path() -> None:
    value = {"headers": {"X-Pod": "{{ alert.labels.pod }}"}}
    with pytest.raises(RenderError, match=r"^restart\.with\.headers\.X-Pod: UndefinedError"):
        render_value(value, _context(), where="restart.with")


def test_render_value_names_the_list_index() -> None:
    value = {"args": ["ok", "{{ alert.labels.instance }}", "{{ alert.labels.pod }}"]}
    with pytest.raises(RenderError, match=r"^s\.with\.args\[2\]: UndefinedError"):
        render_value(value, _context(), where="s.with")


def test_broken_template_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"^target: TemplateSyntaxError"):
        render_text("{{ alert.labels.x ", _context(), where="target")


def test_compile_template_raises_syntax_error() -> None:
    with pytest.raises(TemplateSyntaxError):
        compile_template("{% for x in %}")


# Label values written by whoever controls the alert: they are data and come out exactly as they went in.
HOSTILE_VALUES = [
    pytest.param("{{ 7*7 }}", id="expression"),
    pytest.param("{% for x in range(3) %}x{% endfor %}", id="statement"),
    pytest.param("{{ ''.__class__.__mro__ }}", id="mro"),
    pytest.param("{{ config }}", id="config"),
    pytest.param("{{ alert.labels.__init__.__globals__ }}", id="globals"),
    pytest.param("{# c #}{{ lipsum() }}", id="comment-and-call"),
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{{ alert.labels.evil }}", id="bare"),
        pytest.param("pod/{{ alert.labels.evil }}/x", id="inside-text"),
        pytest.param("{{ alert.labels.evil | string }}", id="filtered"),
    ],
)
def test_hostile_label_values_are_rendered_verbatim(template: str, value: str) -> None:
    expected = template.replace("{{ alert.labels.evil }}", value).replace("{{ alert.labels.evil | string }}", value)
    assert render_text(template, _context(evil=value), where="w") == expected


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_values_stay_verbatim_in_nested_inputs(value: str) -> None:
    inputs = {"json": {"title": "{{ alert.labels.evil }}", "tags": ["{{ alert.labels.evil }}"]}}
    assert render_value(inputs, _context(evil=value), where="w") == {"json": {"title": value, "tags": [value]}}


# Templates an attacker-written playbook might try: each must fail in the sandbox, never reach Python internals.
HOSTILE_TEMPLATES = [
    pytest.param("{{ alert.__class__ }}", id="class"),
    pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", id="subclasses"),
    pytest.param("{{ alert.labels.__init__.__globals__ }}", id="init-globals"),
    pytest.param("{{ cycler.__init__.__globals__ }}", id="cycler-globals"),
    pytest.param("{{ joiner.__init__.__globals__['os'] }}", id="joiner-globals"),
    pytest.param("{{ namespace.__init__.__globals__ }}", id="namespace-globals"),
    pytest.param("{{ lipsum.__globals__ }}", id="lipsum-globals"),
    pytest.param("{{ alert['__class__'] }}", id="subscript-dunder"),
    pytest.param("{{ alert.labels | attr('__class__') }}", id="attr-filter"),
    pytest.param("{{ '{0.__class__}'.format(alert) }}", id="str-format"),
    pytest.param("{{ alert.labels.items.__self__ }}", id="method-self"),
    pytest.param("{{ self.__init__ }}", id="template-self"),
    pytest.param("{{ config }}", id="config"),
    pytest.param("{{ request }}", id="request"),
]


@pytest.mark.parametrize("source", HOSTILE_TEMPLATES)
def test_hostile_templates_are_refused(source: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_text(source, _context(), where="steps[0].with.message")
    assert isinstance(caught.value.__cause__, SecurityError | UndefinedError)
    message = str(caught.value)
    assert message.startswith("steps[0].with.message: ")
    for leaked in ("<class", "__builtins__", "<function", "<module"):
        assert leaked not in message


# Templates that fail for reasons other than a jinja2 error; a label value can trigger these, so they must still
# come out as RenderError (which planning turns into Plan.error) rather than escape as a bare Python exception.
RUNTIME_FAILURE_CASES = [
    pytest.param("{{ 1 / (alert.labels.shards | int) }}", {"shards": "0"}, id="zero-division-from-label"),
    pytest.param("{{ 60 // (alert.labels.shards | int) }}", {"shards": "0"}, id="floor-division-from-label"),
    pytest.param("{{ '%d' % alert.labels.shards }}", {"shards": "two"}, id="percent-format-type-error"),
]


@pytest.mark.parametrize(("source", "labels"), RUNTIME_FAILURE_CASES)
def test_runtime_failures_are_render_errors(source: str, labels: dict[str, str]) -> None:
    with pytest.raises(RenderError, match=r"^steps\[0\]\.with\.x: "):
        render_text(source, _context(**labels), where="steps[0].with.x")


# render_value: strings are rendered at every depth, other scalars come back as the very same object.
NESTED_CASES = [
    pytest.param(
        {"a": "{{ alert.labels.alertname }}", "b": {"c": ["{{ params.size }}", "x"]}},
        {"a": "DiskFull", "b": {"c": ["10Gi", "x"]}},
        id="dict-in-dict-with-list",
    ),
    pytest.param(
        [["{{ alert.fingerprint }}"], {"k": "{{ rule.name }}"}],
        [["abc123"], {"k": "disk"}],
        id="list-of-list-and-dict",
    ),
    pytest.param(
        {"n": 3, "f": 1.5, "t": True, "z": None, "s": "{{ alert.status }}"},
        {"n": 3, "f": 1.5, "t": True, "z": None, "s": "firing"},
        id="mixed-scalars",
    ),
    pytest.param({"{{ alert.status }}": "v"}, {"{{ alert.status }}": "v"}, id="keys-are-not-rendered"),
    pytest.param({}, {}, id="empty-dict"),
    pytest.param([], [], id="empty-list"),
]


@pytest.mark.parametrize(("value", "expected"), NESTED_CASES)
def test_render_value_nested(value: Any, expected: Any) -> None:
    assert render_value(value, _context(), where="w") == expected


@pytest.mark.parametrize(
    "scalar",
    [
        pytest.param(0, id="int-zero"),
        pytest.param(42, id="int"),
        pytest.param(2.5, id="float"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(None, id="none"),
    ],
)
def test_non_string_scalars_pass_through(scalar: object) -> None:
    rendered = render_value(scalar, _context(), where="w")
    assert rendered is scalar
    assert render_value({"k": [scalar]}, _context(), where="w")["k"][0] is scalar


def test_render_value_does_not_change_its_input() -> None:
    value = {"a": ["{{ alert.status }}"]}
    render_value(value, _context(), where="w")
    assert value == {"a": ["{{ alert.status }}"]}


# (value, every template inside it with its path)
SOURCE_CASES = [
    pytest.param("{{ a }}", [("w", "{{ a }}")], id="expression"),
    pytest.param("{% if x %}y{% endif %}", [("w", "{% if x %}y{% endif %}")], id="statement"),
    pytest.param("{# note #}", [("w", "{# note #}")], id="comment"),
    pytest.param("plain", [], id="plain-string"),
    pytest.param("{ a }", [], id="single-braces"),
    pytest.param(5, [], id="int"),
    pytest.param(None, [], id="none"),
    pytest.param(
        {"url": "http://x/{{ a }}", "n": 1, "h": {"X-A": "{{ b }}", "X-B": "c"}, "l": ["d", "{{ e }}"]},
        [("w.url", "http://x/{{ a }}"), ("w.h.X-A", "{{ b }}"), ("w.l[1]", "{{ e }}")],
        id="nested",
    ),
]


@pytest.mark.parametrize(("value", "expected"), SOURCE_CASES)
def test_template_sources(value: Any, expected: list[tuple[str, str]]) -> None:
    assert template_sources(value, where="w") == expected
